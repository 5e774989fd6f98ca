// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// One measured configuration: decode (one query row per sequence at its last position) over a full context, or with
/// <see cref="BenchOptions.QueryLength"/> rows a prefill chunk (the context's last rows, each seeing the positions up to its own).
/// </summary>
internal static class AttentionCase
{
    /// <summary>Runs one configuration for about <see cref="BenchOptions.Seconds"/>; null when its pool would not fit.</summary>
    public static Result? Run(CpuPagedAttention kernel, BenchOptions options, KvStorage storage, int batch, int context)
    {
        var shape = new KvLayerShape(options.KvHeads, options.HeadDim, options.HeadDim);
        var blockSize = options.BlockSize;
        var blocksPerSequence = (context + blockSize - 1) / blockSize;
        var blockCount = batch * blocksPerSequence;
        var elementSize = storage == KvStorage.Float32 ? 4 : 2;
        var layerBytes = (double)blockCount * blockSize * options.KvHeads * 2 * options.HeadDim * elementSize;
        var maxBytes = options.MaxPoolGiB * (1L << 30);
        if (layerBytes > maxBytes)
        {
            return null;
        }

        // Enough layers that one call's KV is not still in the last-level cache from the call before.
        var layers = (int)Math.Clamp(Math.Ceiling(options.MinPoolGiB * (1L << 30) / layerBytes), 1, 64);
        layers = (int)Math.Max(1, Math.Min(layers, Math.Floor(maxBytes / layerBytes)));
        using var pool = new HostKvPool([.. Enumerable.Repeat(shape, layers)], blockCount, blockSize, storage);
        Fill(pool, shape, layers);

        var random = new Random(batch * 31 + context);
        var order = Enumerable.Range(0, blockCount).OrderBy(_ => random.Next()).ToArray();
        var work = new AttentionWork();
        var rows = options.QueryLength;
        for (var s = 0; s < batch; s++)
        {
            work.AddSequence(order.AsSpan(s * blocksPerSequence, blocksPerSequence), 0, context, s * rows, rows, context - rows);
        }

        var q = new float[batch * rows * options.QueryHeads * options.HeadDim];
        for (var i = 0; i < q.Length; i++)
        {
            q[i] = (float)(random.NextDouble() - 0.5);
        }

        var output = new float[batch * rows * options.QueryHeads * options.HeadDim];
        var lse = new float[batch * rows * options.QueryHeads];
        var scale = 1f / MathF.Sqrt(options.HeadDim);
        for (var layer = 0; layer < layers; layer++)
        {
            kernel.Attend(pool, layer, work, options.QueryHeads, scale, q, output, lse);
        }

        var calls = 0;
        var cpuStart = Environment.CpuUsage.TotalTime;
        var start = Stopwatch.GetTimestamp();
        while (calls < layers || Stopwatch.GetElapsedTime(start).TotalSeconds < options.Seconds)
        {
            kernel.Attend(pool, calls % layers, work, options.QueryHeads, scale, q, output, lse);
            calls++;
        }

        var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds / calls;
        var cpuSeconds = (Environment.CpuUsage.TotalTime - cpuStart).TotalSeconds / calls;
        var bytes = (double)batch * context * options.KvHeads * 2 * options.HeadDim * elementSize;
        // Scores and weighted values: 2 x 2 flops per (query head, visible position, dimension); row i of the chunk sees
        // context - rows + i + 1 positions.
        var visible = ((double)rows * (context - rows)) + ((double)rows * (rows + 1) / 2);
        var flops = 4.0 * batch * options.QueryHeads * options.HeadDim * visible;
        return new Result(layers, bytes, seconds, bytes / seconds / 1e9, bytes / cpuSeconds / 1e9, flops / seconds / 1e9, kernel.LastItemCount, kernel.LastMergeGroupCount);
    }

    /// <summary>Random rows in block 0 of every layer, copied to every block (the bytes' values do not change the time).</summary>
    private static void Fill(HostKvPool pool, KvLayerShape shape, int layers)
    {
        var random = new Random(1);
        var slots = Enumerable.Range(0, pool.BlockSize).ToArray();
        var key = new float[pool.BlockSize * shape.KvHeads * shape.KeyWidth];
        var value = new float[pool.BlockSize * shape.KvHeads * shape.ValueWidth];
        for (var layer = 0; layer < layers; layer++)
        {
            for (var i = 0; i < key.Length; i++)
            {
                key[i] = (float)(random.NextDouble() - 0.5);
            }

            for (var i = 0; i < value.Length; i++)
            {
                value[i] = (float)(random.NextDouble() - 0.5);
            }

            pool.Write(layer, slots, key, value);
        }

        for (var block = 1; block < pool.BlockCount; block++)
        {
            pool.CopyBlock(0, block);
        }
    }

    /// <summary>One configuration's measurement.</summary>
    /// <param name="Layers">Layers in the pool (the calls rotate over them).</param>
    /// <param name="BytesPerCall">KV bytes one call reads.</param>
    /// <param name="SecondsPerCall">Wall time per call.</param>
    /// <param name="GigabytesPerSecond">KV read per wall second.</param>
    /// <param name="GigabytesPerCpuSecond">KV read per second of process CPU time (all threads, spinning included): the kernel's per-core rate, which a loaded machine does not distort.</param>
    /// <param name="GigaflopsPerSecond">Attention arithmetic (scores and weighted values) per wall second.</param>
    /// <param name="Items">Work items of the last call.</param>
    /// <param name="Cut">KV ranges cut and merged in the last call.</param>
    internal readonly record struct Result(int Layers, double BytesPerCall, double SecondsPerCall, double GigabytesPerSecond, double GigabytesPerCpuSecond, double GigaflopsPerSecond, int Items, int Cut);
}
