// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// The benchmark's command line; every option has a default (a Llama-3.1-8B layer at batch 16-64, 1k-8k context, decode:
/// one query row per sequence; <c>QueryLength</c> rows make each sequence a prefill chunk at the end of its context).
/// </summary>
internal sealed record BenchOptions(
    int Threads, int QueryHeads, int KvHeads, int HeadDim, int BlockSize, IReadOnlyList<KvStorage> Storages,
    IReadOnlyList<int> Batches, IReadOnlyList<int> Contexts, double Seconds, double MinPoolGiB, double MaxPoolGiB,
    double StreamGiB, int Repeats, int QueryLength = 1)
{
    /// <summary>Parses <paramref name="args"/>; prints usage and returns null on a bad or help argument.</summary>
    public static BenchOptions? Parse(string[] args)
    {
        var options = new BenchOptions(Environment.ProcessorCount, 32, 8, 128, 16,
            [KvStorage.Float16, KvStorage.BFloat16, KvStorage.Float32], [16, 64], [1024, 8192], 2.0, 1.0, 8.0, 2.0, 5);
        for (var i = 0; i < args.Length; i++)
        {
            var value = i + 1 < args.Length ? args[i + 1] : null;
            try
            {
                options = args[i] switch
                {
                    "--threads" => options with { Threads = int.Parse(value!, CultureInfo.InvariantCulture) },
                    "--query-heads" => options with { QueryHeads = int.Parse(value!, CultureInfo.InvariantCulture) },
                    "--kv-heads" => options with { KvHeads = int.Parse(value!, CultureInfo.InvariantCulture) },
                    "--head-dim" => options with { HeadDim = int.Parse(value!, CultureInfo.InvariantCulture) },
                    "--block-size" => options with { BlockSize = int.Parse(value!, CultureInfo.InvariantCulture) },
                    "--storage" => options with { Storages = [.. value!.Split(',').Select(ParseStorage)] },
                    "--batch" => options with { Batches = [.. value!.Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture))] },
                    "--context" => options with { Contexts = [.. value!.Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture))] },
                    "--seconds" => options with { Seconds = double.Parse(value!, CultureInfo.InvariantCulture) },
                    "--min-pool-gib" => options with { MinPoolGiB = double.Parse(value!, CultureInfo.InvariantCulture) },
                    "--max-pool-gib" => options with { MaxPoolGiB = double.Parse(value!, CultureInfo.InvariantCulture) },
                    "--stream-gib" => options with { StreamGiB = double.Parse(value!, CultureInfo.InvariantCulture) },
                    "--repeats" => options with { Repeats = int.Parse(value!, CultureInfo.InvariantCulture) },
                    "--query-len" => options with { QueryLength = int.Parse(value!, CultureInfo.InvariantCulture) },
                    "--help" or "-h" => throw new FormatException("the options are"),
                    _ => throw new FormatException($"unknown option '{args[i]}'"),
                };
                i++;
            }
            catch (Exception exception) when (exception is FormatException or ArgumentNullException or OverflowException)
            {
                Console.Error.WriteLine($"error: {exception.Message}");
                Console.Error.WriteLine("usage: attention-cpu [--threads N] [--query-heads 32] [--kv-heads 8] [--head-dim 128] [--block-size 16]");
                Console.Error.WriteLine("         [--storage fp16,bf16,fp32] [--batch 16,64] [--context 1024,8192] [--seconds 2]");
                Console.Error.WriteLine("         [--min-pool-gib 1] [--max-pool-gib 8] [--stream-gib 2] [--repeats 5] [--query-len 1]");
                return null;
            }
        }

        if (options.QueryLength <= 0 || options.Contexts.Any(context => context < options.QueryLength))
        {
            Console.Error.WriteLine($"error: --query-len must be positive and at most every --context, not {options.QueryLength}");
            return null;
        }

        return options.Threads <= 0 ? options with { Threads = Environment.ProcessorCount } : options;
    }

    private static KvStorage ParseStorage(string value) => value switch
    {
        "fp32" => KvStorage.Float32,
        "fp16" => KvStorage.Float16,
        "bf16" => KvStorage.BFloat16,
        _ => throw new FormatException($"storage must be fp32, fp16 or bf16, not '{value}'"),
    };
}
