// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>The per-item kernel, the merge of cut ranges and the argument checks of <see cref="CpuPagedAttention"/>.</summary>
internal sealed unsafe partial class CpuPagedAttention
{
    /// <summary>
    /// How many blocks ahead of the one being attended the kernel prefetches (into L2). Measured with
    /// bench/attention-cpu on 2 cores (bench/results/attention-cpu-2026-12-07.md): 2 beat 0, 1 and 4 for every storage.
    /// </summary>
    private const int PrefetchBlocks = 2;

    /// <summary>
    /// The most query vectors an item may have for the in-register 16-bit path (a decode row of a KV head's group of up to
    /// eight query heads: Llama-3-70B, Qwen2-7B); each block's keys and values are then converted once per four vectors.
    /// </summary>
    private const int MaxFusedVectors = 8;

    /// <summary>Attends one work item: a tile of one sequence's query rows, one KV head's group, over one KV range.</summary>
    private static void Execute(in Call call, in Item item, AttentionScratch scratch)
    {
        var shape = call.Shape;
        var keyWidth = shape.KeyWidth;
        var valueWidth = shape.ValueWidth;
        var group = call.Group;
        var pool = call.Pool;
        var blockSize = pool.BlockSize;
        ref readonly var sequence = ref call.Work[item.Sequence];
        var table = call.Work.BlockTable(sequence);
        var vectors = item.RowCount * group;
        var queries = scratch.Queries;
        var accumulators = scratch.Accumulators;
        var max = scratch.Max;
        var sum = scratch.Sum;
        var visible = scratch.Visible;
        var counts = scratch.Counts;

        // Load the tile's query vectors (pre-scaled) and each one's visible KV end.
        var end = item.KvBegin;
        for (var r = 0; r < item.RowCount; r++)
        {
            var row = sequence.QueryOffset + item.RowStart + r;
            var rowVisible = Math.Min(item.KvEnd, TileVisible(sequence, item.RowStart + r));
            for (var g = 0; g < group; g++)
            {
                var head = (item.KvHead * group) + g;
                var v = (r * group) + g;
                var masked = call.Mask != null && call.Mask[(row * call.QueryHeads) + head] == 0f;
                visible[v] = masked ? 0 : rowVisible;
                end = Math.Max(end, visible[v]);
                var source = call.Queries + ((((long)row * call.QueryHeads) + head) * keyWidth);
                var destination = queries + ((long)v * keyWidth);
                for (var d = 0; d < keyWidth; d++)
                {
                    destination[d] = source[d] * call.Scale;
                }

                max[v] = float.NegativeInfinity;
                sum[v] = 0f;
                new Span<float>(accumulators + ((long)v * valueWidth), valueWidth).Clear();
            }
        }

        var storage = pool.Storage;
        var direct = storage == KvStorage.Float32;
        var valueOffset = pool.ValueOffset(call.Layer);
        var valueStride = shape.ValueIsKeyPrefix ? keyWidth : valueWidth;
        var transposed = !shape.ValueIsKeyPrefix;
        // Decode-shaped items (at most eight query vectors, four at a time) score 16-bit keys without an fp32 copy of the block.
        var fused = transposed && !direct && vectors <= MaxFusedVectors && KvSimd.CanScoreTransposed16(blockSize, keyWidth);
        // ... and accumulate its 16-bit values the same way.
        var fusedValues = fused && KvSimd.CanAccumulateRows16(valueWidth);
        var finite = !pool.MayHoldNonFiniteHalf;
        var headBytes = pool.HeadStride(call.Layer);
        for (var blockStart = item.KvBegin; blockStart < end; blockStart += blockSize)
        {
            var rows = Math.Min(blockSize, end - blockStart);
            var head = pool.HeadPointer(call.Layer, table[blockStart / blockSize], item.KvHead);
            var ahead = PrefetchBlocks * blockSize;
            if (blockStart + ahead < end)
            {
                Prefetch(pool.HeadPointer(call.Layer, table[(blockStart + ahead) / blockSize], item.KvHead), headBytes);
            }

            var keys = (float*)head;
            if (fused)
            {
                for (var g = 0; g < vectors; g += 4)
                {
                    KvSimd.ScoresTransposed16(head, storage, finite, blockSize, keyWidth, queries + ((long)g * keyWidth), Math.Min(4, vectors - g),
                        scratch.Scores + ((long)g * blockSize), rows);
                }
            }
            else
            {
                if (!direct)
                {
                    // A transposed block is converted whole (its columns span the block); a row-major one up to its last row.
                    keys = scratch.Keys;
                    KvSimd.Convert(head, keys, (transposed ? blockSize : rows) * keyWidth, storage);
                }

                if (transposed)
                {
                    KvSimd.ScoresTransposed(keys, blockSize, keyWidth, queries, vectors, scratch.Scores, rows);
                }
            }

            // Each vector's scores over its visible rows, then one rescale and one vector exp per vector and block.
            var active = false;
            for (var v = 0; v < vectors; v++)
            {
                var count = Math.Min(rows, visible[v] - blockStart);
                counts[v] = count;
                if (count <= 0)
                {
                    continue;
                }

                active = true;
                var scores = scratch.Scores + ((long)v * blockSize);
                if (!transposed)
                {
                    var query = queries + ((long)v * keyWidth);
                    for (var j = 0; j < count; j++)
                    {
                        scores[j] = KvSimd.Dot(query, keys + ((long)j * keyWidth), keyWidth);
                    }
                }

                var newMax = MathF.Max(max[v], KvSimd.Max(scores, count));
                if (newMax > max[v] && sum[v] > 0f)
                {
                    var factor = MathF.Exp(max[v] - newMax);
                    KvSimd.Scale(accumulators + ((long)v * valueWidth), factor, valueWidth);
                    sum[v] *= factor;
                }

                max[v] = newMax;
                sum[v] += KvSimd.ExpSubtract(scores, count, newMax);
            }

            if (!active)
            {
                continue;
            }

            // Values: each row read (and converted) once per block, accumulated into every vector that sees it.
            byte* values;
            if (fusedValues)
            {
                values = head + valueOffset;
            }
            else if (shape.ValueIsKeyPrefix)
            {
                values = (byte*)keys;
            }
            else if (direct)
            {
                values = head + valueOffset;
            }
            else
            {
                values = (byte*)scratch.Values;
                KvSimd.Convert(head + valueOffset, scratch.Values, rows * valueWidth, storage);
            }

            AccumulateValues(values, fusedValues, storage, finite, vectors, visible, counts, scratch.Scores, blockSize, accumulators, valueStride, valueWidth);
        }

        // Normalise into the output (or this range's partial result).
        for (var r = 0; r < item.RowCount; r++)
        {
            var row = sequence.QueryOffset + item.RowStart + r;
            for (var g = 0; g < group; g++)
            {
                var v = (r * group) + g;
                float* output;
                float* lse;
                if (item.Partial < 0)
                {
                    var index = ((long)row * call.QueryHeads) + (item.KvHead * group) + g;
                    output = call.Output + (index * valueWidth);
                    lse = call.Lse + index;
                }
                else
                {
                    var partial = call.Partials + ((long)item.Partial * call.PartialStride);
                    output = partial + ((long)v * valueWidth);
                    lse = partial + ((long)call.Vectors * valueWidth) + v;
                }

                var accumulator = accumulators + ((long)v * valueWidth);
                if (sum[v] > 0f)
                {
                    var inverse = 1f / sum[v];
                    for (var d = 0; d < valueWidth; d++)
                    {
                        output[d] = accumulator[d] * inverse;
                    }

                    *lse = max[v] + MathF.Log(sum[v]);
                }
                else
                {
                    new Span<float>(output, valueWidth).Clear();
                    *lse = float.NegativeInfinity;
                }
            }
        }
    }

    /// <summary>
    /// Asks for the <paramref name="bytes"/> at <paramref name="address"/> in the core's L2 cache, a line at a time: a
    /// sequence's blocks lie scattered through the pool, and the hardware prefetchers, which follow streams within a page,
    /// do not see the jump to the next block coming.
    /// </summary>
    private static void Prefetch(byte* address, long bytes)
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported)
        {
            return;
        }

        for (long offset = 0; offset < bytes; offset += 64)
        {
            System.Runtime.Intrinsics.X86.Sse.Prefetch1(address + offset);
        }
    }

    /// <summary>
    /// One block's values into every vector's accumulator, four vectors per pass where the four take the same rows of the
    /// block (<see cref="CommonRows"/>: a row's group of query heads; in a prefill tile every block left of the diagonal),
    /// else one vector at a time. <paramref name="sixteen"/>: the block's own 16-bit values, widened in registers
    /// (<see cref="KvSimd.AccumulateRows16"/>, one vector or four); otherwise fp32 values, read in place or converted once
    /// into scratch (<see cref="KvSimd.AccumulateRowsFour"/> where the machine has it, <see cref="KvSimd.AccumulateRows"/> for one).
    /// </summary>
    private static void AccumulateValues(byte* values, bool sixteen, KvStorage storage, bool finite, int vectors, int* visible, int* counts, float* scores,
        int blockSize, float* accumulators, int valueStride, int valueWidth)
    {
        var four = sixteen || KvSimd.CanAccumulateRowsFour(valueWidth);
        var v = 0;
        while (v < vectors)
        {
            // A lone fp32 vector takes the one-vector loop; a lone 16-bit one has only the four-wide loop.
            var n = Math.Min(4, vectors - v);
            var count = four && (sixteen || n > 1) ? CommonRows(visible, counts, v, n) : 0;
            if (count == 0)
            {
                n = 1;
                count = counts[v];
            }

            if (count > 0)
            {
                var accumulator = accumulators + ((long)v * valueWidth);
                var weights = scores + ((long)v * blockSize);
                if (sixteen)
                {
                    KvSimd.AccumulateRows16(accumulator, weights, blockSize, n, values, storage, finite, count, valueStride, valueWidth);
                }
                else if (n > 1)
                {
                    KvSimd.AccumulateRowsFour(accumulator, weights, blockSize, n, (float*)values, count, valueStride, valueWidth);
                }
                else
                {
                    KvSimd.AccumulateRows(accumulator, weights, (float*)values, count, valueStride, valueWidth);
                }
            }

            v += n;
        }
    }

    /// <summary>
    /// The rows of this block that vectors [<paramref name="first"/>, + <paramref name="n"/>) all take, or 0 when they
    /// differ or any of them takes none. A vector whose head is masked sees no KV at all (its visible end is 0) and its
    /// accumulator is never read, so it goes along with the others; one that has seen KV but none in this block has
    /// weights that were never computed here, so it does not.
    /// </summary>
    private static int CommonRows(int* visible, int* counts, int first, int n)
    {
        var common = 0;
        for (var v = first; v < first + n; v++)
        {
            if (visible[v] == 0)
            {
                continue;
            }

            if (counts[v] <= 0 || (common > 0 && counts[v] != common))
            {
                return 0;
            }

            common = counts[v];
        }

        return common;
    }

    /// <summary>Merges the partial results of one cut KV range into the output, in range order.</summary>
    private static void Merge(in Call call, in MergeGroup mergeGroup)
    {
        var valueWidth = call.Shape.ValueWidth;
        var group = call.Group;
        ref readonly var sequence = ref call.Work[mergeGroup.Sequence];
        for (var r = 0; r < mergeGroup.RowCount; r++)
        {
            var row = sequence.QueryOffset + mergeGroup.RowStart + r;
            for (var g = 0; g < group; g++)
            {
                var v = (r * group) + g;
                var index = ((long)row * call.QueryHeads) + (mergeGroup.KvHead * group) + g;
                var output = new Span<float>(call.Output + (index * valueWidth), valueWidth);
                ref var lse = ref call.Lse[index];
                for (var p = 0; p < mergeGroup.Parts; p++)
                {
                    var partial = call.Partials + ((long)(mergeGroup.FirstPartial + p) * call.PartialStride);
                    var partialOutput = new ReadOnlySpan<float>(partial + ((long)v * valueWidth), valueWidth);
                    var partialLse = partial[((long)call.Vectors * valueWidth) + v];
                    if (p == 0)
                    {
                        partialOutput.CopyTo(output);
                        lse = partialLse;
                    }
                    else
                    {
                        AttentionMerge.MergeOne(output, ref lse, partialOutput, partialLse);
                    }
                }
            }
        }
    }

    private static KvLayerShape Validate(HostKvPool pool, int layer, AttentionWork work, int queryHeads,
        ReadOnlySpan<float> q, Span<float> output, Span<float> lse, ReadOnlySpan<float> headMask)
    {
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentNullException.ThrowIfNull(work);
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, pool.Layers.Count);
        var shape = pool.Layers[layer];
        if (queryHeads <= 0 || queryHeads % shape.KvHeads != 0)
        {
            throw new ArgumentException($"Query heads ({queryHeads}) must be a positive multiple of the layer's {shape.KvHeads} KV heads.", nameof(queryHeads));
        }

        var rows = work.QueryCount;
        if (q.Length < (long)rows * queryHeads * shape.KeyWidth)
        {
            throw new ArgumentException($"q has {q.Length} values; {rows} rows of {queryHeads} heads x {shape.KeyWidth} need {(long)rows * queryHeads * shape.KeyWidth}.", nameof(q));
        }

        if (output.Length < (long)rows * queryHeads * shape.ValueWidth)
        {
            throw new ArgumentException($"output has {output.Length} values; {rows} rows of {queryHeads} heads x {shape.ValueWidth} need {(long)rows * queryHeads * shape.ValueWidth}.", nameof(output));
        }

        if (lse.Length < rows * queryHeads)
        {
            throw new ArgumentException($"lse has {lse.Length} values; {rows} rows of {queryHeads} heads need {rows * queryHeads}.", nameof(lse));
        }

        if (!headMask.IsEmpty && headMask.Length < rows * queryHeads)
        {
            throw new ArgumentException($"headMask has {headMask.Length} values; {rows} rows of {queryHeads} heads need {rows * queryHeads}.", nameof(headMask));
        }

        for (var s = 0; s < work.SequenceCount; s++)
        {
            ref readonly var sequence = ref work[s];
            if (sequence.KvStart % pool.BlockSize != 0)
            {
                throw new ArgumentException($"Sequence {s}: kvStart {sequence.KvStart} is not a multiple of the block size {pool.BlockSize}.", nameof(work));
            }

            var needed = (sequence.KvCount + pool.BlockSize - 1) / pool.BlockSize;
            if (sequence.BlockLength < needed)
            {
                throw new ArgumentException($"Sequence {s}: {sequence.KvCount} KV positions need {needed} blocks; the table has {sequence.BlockLength}.", nameof(work));
            }

            var table = work.BlockTable(sequence);
            for (var b = 0; b < needed; b++)
            {
                if ((uint)table[b] >= (uint)pool.BlockCount)
                {
                    throw new ArgumentException($"Sequence {s}: block {table[b]} is not in [0, {pool.BlockCount}).", nameof(work));
                }
            }
        }

        return shape;
    }

    /// <summary>One work item: query rows [RowStart, RowStart + RowCount) of a sequence, one KV head, KV range [KvBegin, KvEnd) (relative to kvStart); Partial: its partial-result slot, or -1 to write the output directly.</summary>
    private readonly record struct Item(int Sequence, int KvHead, int RowStart, int RowCount, int KvBegin, int KvEnd, int Partial);

    /// <summary>A (sequence, KV head, row tile) whose KV range was cut into <see cref="Parts"/> items with consecutive partial slots.</summary>
    private readonly record struct MergeGroup(int Sequence, int KvHead, int RowStart, int RowCount, int FirstPartial, int Parts);

    /// <summary>The arguments of the call in progress, as the workers see them (pointers pinned by <see cref="Attend"/>).</summary>
    private readonly struct Call(HostKvPool pool, int layer, AttentionWork work, KvLayerShape shape, int queryHeads, int group, float scale,
        float* queries, float* output, float* lse, float* mask, float* partials, int vectors)
    {
        public HostKvPool Pool { get; } = pool;

        public int Layer { get; } = layer;

        public AttentionWork Work { get; } = work;

        public KvLayerShape Shape { get; } = shape;

        public int QueryHeads { get; } = queryHeads;

        /// <summary>Query heads per KV head.</summary>
        public int Group { get; } = group;

        public float Scale { get; } = scale;

        public float* Queries { get; } = queries;

        public float* Output { get; } = output;

        public float* Lse { get; } = lse;

        /// <summary>The head mask, or null.</summary>
        public float* Mask { get; } = mask;

        public float* Partials { get; } = partials;

        /// <summary>Query vectors per tile (the partial results' row count).</summary>
        public int Vectors { get; } = vectors;

        /// <summary>Floats per partial result: Vectors outputs, then Vectors lse values.</summary>
        public long PartialStride => (long)Vectors * (Shape.ValueWidth + 1);
    }
}
