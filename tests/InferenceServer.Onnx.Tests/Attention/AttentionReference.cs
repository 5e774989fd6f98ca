using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Tests.Attention;

/// <summary>
/// Naive double-precision attention over plain arrays, and the helpers that fill a <see cref="HostKvPool"/> with the same
/// values (rounded to the pool's storage type, so the reference sees exactly what the kernel reads).
/// </summary>
internal static class AttentionReference
{
    /// <summary>The float a value becomes once stored as <paramref name="storage"/>.</summary>
    public static float Round(float value, KvStorage storage) => storage switch
    {
        KvStorage.Float16 => (float)(Half)value,
        KvStorage.BFloat16 => KvConvert.FromBFloat16(KvConvert.ToBFloat16(value)),
        _ => value,
    };

    /// <summary>
    /// Block tables for rows of <paramref name="lengths"/> tokens (+ 3 to decode into) whose blocks alternate between ids
    /// [0, 32) and [32, 64) every <paramref name="blocksPerRun"/> blocks: every row spans two backends split at 32.
    /// </summary>
    public static int[][] AlternatingTables(int[] lengths, int blockSize, int blocksPerRun)
    {
        var tables = new int[lengths.Length][];
        int nextLow = 0, nextHigh = 32;
        for (var r = 0; r < lengths.Length; r++)
        {
            tables[r] = new int[(lengths[r] + 3 + blockSize - 1) / blockSize];
            for (var j = 0; j < tables[r].Length; j++)
            {
                tables[r][j] = (j / blocksPerRun) % 2 == 0 ? nextLow++ : nextHigh++;
            }
        }

        return tables;
    }

    /// <summary>Uniform random values in [-range, range).</summary>
    public static float[] Random(Random random, int count, float range = 1f)
    {
        var values = new float[count];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = ((float)random.NextDouble() * 2f - 1f) * range;
        }

        return values;
    }

    /// <summary>
    /// Writes a sequence's KV rows <paramref name="key"/> ([positions, KvHeads * KeyWidth]) and <paramref name="value"/>
    /// for positions [kvStart, kvStart + count) of the whole-sequence arrays into <paramref name="pool"/> through
    /// <paramref name="blockTable"/>, one position at a time in shuffled order (so slots are scattered), and rounds the arrays
    /// in place to the pool's storage type.
    /// </summary>
    public static void Fill(HostKvPool pool, int layer, int[] blockTable, float[] key, float[] value, int kvStart, int count, Random random)
    {
        var shape = pool.Layers[layer];
        var keyRow = shape.KvHeads * shape.KeyWidth;
        var valueRow = shape.KvHeads * shape.ValueWidth;
        var order = Enumerable.Range(0, count).OrderBy(_ => random.Next()).ToArray();
        // Two tokens per Write call where possible, to exercise multi-token writes.
        for (var i = 0; i < order.Length; i += 2)
        {
            var take = Math.Min(2, order.Length - i);
            var slots = new int[take];
            var keys = new float[take * keyRow];
            var values = new float[take * valueRow];
            for (var t = 0; t < take; t++)
            {
                var j = order[i + t];
                slots[t] = (blockTable[j / pool.BlockSize] * pool.BlockSize) + (j % pool.BlockSize);
                key.AsSpan((kvStart + j) * keyRow, keyRow).CopyTo(keys.AsSpan(t * keyRow));
                value.AsSpan((kvStart + j) * valueRow, valueRow).CopyTo(values.AsSpan(t * valueRow));
            }

            pool.Write(layer, slots, keys, shape.ValueIsKeyPrefix ? default : values);
        }

        for (var i = kvStart * keyRow; i < (kvStart + count) * keyRow; i++)
        {
            key[i] = Round(key[i], pool.Storage);
        }

        for (var i = kvStart * valueRow; i < (kvStart + count) * valueRow; i++)
        {
            value[i] = Round(value[i], pool.Storage);
        }
    }

    /// <summary>
    /// Attention of one query row of <paramref name="queryHeads"/> heads at absolute position <paramref name="position"/>
    /// over KV positions [kvStart, kvStart + kvCount) ∩ [0, position] of whole-sequence arrays; heads that see nothing (or
    /// are masked) give output 0 and lse -infinity.
    /// </summary>
    public static void Attend(KvLayerShape shape, int queryHeads, double scale, ReadOnlySpan<float> q, float[] key, float[] value,
        int kvStart, int kvCount, int position, Span<double> output, Span<double> lse, ReadOnlySpan<float> headMask = default)
    {
        var group = queryHeads / shape.KvHeads;
        var keyRow = shape.KvHeads * shape.KeyWidth;
        var valueRow = shape.KvHeads * shape.ValueWidth;
        var end = Math.Min(kvStart + kvCount, position + 1);
        for (var h = 0; h < queryHeads; h++)
        {
            var o = output.Slice(h * shape.ValueWidth, shape.ValueWidth);
            o.Clear();
            if (end <= kvStart || (!headMask.IsEmpty && headMask[h] == 0f))
            {
                lse[h] = double.NegativeInfinity;
                continue;
            }

            var kvHead = h / group;
            var scores = new double[end - kvStart];
            var max = double.NegativeInfinity;
            for (var p = kvStart; p < end; p++)
            {
                double dot = 0;
                for (var d = 0; d < shape.KeyWidth; d++)
                {
                    dot += (double)q[(h * shape.KeyWidth) + d] * key[(p * keyRow) + (kvHead * shape.KeyWidth) + d];
                }

                scores[p - kvStart] = dot * scale;
                max = Math.Max(max, scores[p - kvStart]);
            }

            double sum = 0;
            foreach (var s in scores)
            {
                sum += Math.Exp(s - max);
            }

            for (var p = kvStart; p < end; p++)
            {
                var weight = Math.Exp(scores[p - kvStart] - max) / sum;
                for (var d = 0; d < shape.ValueWidth; d++)
                {
                    var v = shape.ValueIsKeyPrefix
                        ? key[(p * keyRow) + (kvHead * shape.KeyWidth) + d]
                        : value[(p * valueRow) + (kvHead * shape.ValueWidth) + d];
                    o[d] += weight * v;
                }
            }

            lse[h] = max + Math.Log(sum);
        }
    }
}
