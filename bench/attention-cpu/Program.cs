// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.Intrinsics;
using InferenceServer.Onnx.Attention;

// Decode-shaped (or, with --query-len, prefill-shaped) paged attention on the host's cores (CpuPagedAttention over HostKvPool), reported as GB/s of KV read,
// next to this host's STREAM-like read and copy bandwidth measured in the same run. See README.md.
var options = BenchOptions.Parse(args);
if (options is null)
{
    return 2;
}

Console.WriteLine($"# attention-cpu: {Environment.ProcessorCount} logical CPUs, {options.Threads} threads, .NET {Environment.Version}, " +
    $"Vector512 {Vector512.IsHardwareAccelerated}, Vector256 {Vector256.IsHardwareAccelerated}");
Console.WriteLine($"# shape: {options.QueryHeads} query heads, {options.KvHeads} KV heads, head dim {options.HeadDim}, block size {options.BlockSize}; " +
    $"pools of at least {options.MinPoolGiB} GiB (layers rotated so the KV is not in cache), at most {options.MaxPoolGiB} GiB; " +
    (options.QueryLength == 1 ? "decode (one query row per sequence)" : $"prefill chunks of {options.QueryLength} query rows per sequence"));

double read;
double copy;
using (var memory = new MemoryBandwidth(options.Threads, (long)(options.StreamGiB * (1L << 30))))
{
    read = memory.Read(options.Repeats);
    copy = memory.Copy(options.Repeats);
}

Console.WriteLine($"# host bandwidth ({options.StreamGiB} GiB arrays, best of {options.Repeats}): read {read:F1} GB/s, copy {copy:F1} GB/s (STREAM convention: read + written)");
Console.WriteLine();
Console.WriteLine("| storage | batch | context | layers | KV read/call (MB) | ms/call | KV GB/s | of read BW | of copy BW | KV GB per CPU-s | GFLOP/s | items | cut |");
Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
using var kernel = new CpuPagedAttention(options.Threads);
foreach (var storage in options.Storages)
{
    foreach (var batch in options.Batches)
    {
        foreach (var context in options.Contexts)
        {
            var result = AttentionCase.Run(kernel, options, storage, batch, context);
            if (result is null)
            {
                Console.WriteLine($"| {storage} | {batch} | {context} | skipped: the pool would exceed {options.MaxPoolGiB} GiB | | | | | | | | | |");
                continue;
            }

            var r = result.Value;
            Console.WriteLine($"| {storage} | {batch} | {context} | {r.Layers} | {r.BytesPerCall / 1e6:F1} | {r.SecondsPerCall * 1e3:F3} | {r.GigabytesPerSecond:F1} | " +
                $"{r.GigabytesPerSecond / read:P0} | {r.GigabytesPerSecond / copy:P0} | {r.GigabytesPerCpuSecond:F1} | {r.GigaflopsPerSecond:F1} | {r.Items} | {r.Cut} |");
        }
    }
}

return 0;
