// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.CompilerServices;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// Paged attention on the host's cores over a <see cref="HostKvPool"/>: online softmax per query head, returning the
/// output and its log-sum-exp so that partial results over disjoint KV ranges merge exactly (<see cref="AttentionMerge"/>).
/// </summary>
internal sealed unsafe class CpuPagedAttention : IDisposable
{
    private float[] _accumulator = new float[256];

    /// <summary>Creates the kernel with <paramref name="threads"/> workers (&lt;= 0: <see cref="Environment.ProcessorCount"/>).</summary>
    public CpuPagedAttention(int threads)
    {
        Threads = threads <= 0 ? Environment.ProcessorCount : threads;
    }

    /// <summary>Threads that attend (the caller's included).</summary>
    public int Threads { get; }

    /// <summary>
    /// Attends <paramref name="work"/>'s query rows over layer <paramref name="layer"/> of <paramref name="pool"/>.
    /// <paramref name="q"/>: [QueryCount, queryHeads * KeyWidth]; <paramref name="output"/>: [QueryCount, queryHeads * ValueWidth];
    /// <paramref name="lse"/>: [QueryCount, queryHeads] (natural log of the sum of exp(scaled scores)); query head h uses
    /// KV head h / (queryHeads / KvHeads); <paramref name="headMask"/> (optional, [QueryCount, queryHeads]): a 0 entry skips
    /// that head (output 0, lse -inf) (Mixture-of-Head). Rows no sequence names are left untouched.
    /// </summary>
    public void Attend(HostKvPool pool, int layer, AttentionWork work, int queryHeads, float scale,
        ReadOnlySpan<float> q, Span<float> output, Span<float> lse, ReadOnlySpan<float> headMask = default)
    {
        var shape = Validate(pool, layer, work, queryHeads, q, output, lse, headMask);
        if (_accumulator.Length < shape.ValueWidth)
        {
            _accumulator = new float[shape.ValueWidth];
        }

        var group = queryHeads / shape.KvHeads;
        var keyBytesPerRow = (long)shape.KeyWidth * pool.ElementSize;
        var valueBytesPerRow = (long)shape.ValueWidth * pool.ElementSize;
        var valueOffset = shape.ValueIsKeyPrefix ? 0 : pool.ValueOffset(layer);
        var rowStride = shape.ValueIsKeyPrefix ? keyBytesPerRow : valueBytesPerRow;
        var accumulator = _accumulator.AsSpan(0, shape.ValueWidth);
        for (var s = 0; s < work.SequenceCount; s++)
        {
            ref readonly var sequence = ref work[s];
            var table = work.BlockTable(sequence);
            for (var i = 0; i < sequence.QueryCount; i++)
            {
                var row = sequence.QueryOffset + i;
                var visible = Math.Min(sequence.KvCount, sequence.FirstQueryPosition + i - sequence.KvStart + 1);
                for (var h = 0; h < queryHeads; h++)
                {
                    var outputHead = output.Slice(((row * queryHeads) + h) * shape.ValueWidth, shape.ValueWidth);
                    var lseIndex = (row * queryHeads) + h;
                    if (visible <= 0 || (!headMask.IsEmpty && headMask[lseIndex] == 0f))
                    {
                        outputHead.Clear();
                        lse[lseIndex] = float.NegativeInfinity;
                        continue;
                    }

                    var kvHead = h / group;
                    var queryHead = q.Slice(((row * queryHeads) + h) * shape.KeyWidth, shape.KeyWidth);
                    var max = float.NegativeInfinity;
                    var sum = 0f;
                    accumulator.Clear();
                    for (var j = 0; j < visible; j++)
                    {
                        var head = pool.HeadPointer(layer, table[j / pool.BlockSize], kvHead);
                        var offset = j % pool.BlockSize;
                        var score = scale * Dot(queryHead, head + (offset * keyBytesPerRow), pool.Storage);
                        var value = head + valueOffset + (offset * rowStride);
                        if (score > max)
                        {
                            var rescale = MathF.Exp(max - score);
                            sum *= rescale;
                            for (var d = 0; d < accumulator.Length; d++)
                            {
                                accumulator[d] *= rescale;
                            }

                            max = score;
                        }

                        var weight = MathF.Exp(score - max);
                        sum += weight;
                        for (var d = 0; d < accumulator.Length; d++)
                        {
                            accumulator[d] += weight * Load(value, d, pool.Storage);
                        }
                    }

                    for (var d = 0; d < accumulator.Length; d++)
                    {
                        outputHead[d] = accumulator[d] / sum;
                    }

                    lse[lseIndex] = max + MathF.Log(sum);
                }
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Load(byte* row, int index, KvStorage storage) => storage switch
    {
        KvStorage.Float32 => ((float*)row)[index],
        KvStorage.Float16 => (float)((Half*)row)[index],
        _ => KvConvert.FromBFloat16(((ushort*)row)[index]),
    };

    private static float Dot(ReadOnlySpan<float> query, byte* key, KvStorage storage)
    {
        var sum = 0f;
        for (var d = 0; d < query.Length; d++)
        {
            sum += query[d] * Load(key, d, storage);
        }

        return sum;
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
}
