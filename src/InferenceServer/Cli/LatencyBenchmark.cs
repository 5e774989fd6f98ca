// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using System.Globalization;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Cli;

/// <summary>
/// <c>InferenceServer bench latency</c>, in the spirit of <c>vllm bench latency</c>: the model runner alone, in process
/// (no HTTP, no scheduler), on random token-id prompts: one packed prefill of every row, then greedy decode steps of the
/// whole batch with the runner's own argmax fed back. Prints per batch size the prefill time and the decode step's
/// p50/p99 and output tokens/s, so the model's own speed can be told apart from the serving path's.
/// </summary>
internal static class LatencyBenchmark
{
    public const string Usage = """
        usage: InferenceServer bench latency --model <dir> [--device auto|cpu|cuda[:N]] [--batch-sizes 1,16,64,256]
                                             [--input-len 128] [--output-len 128] [--seed 0] [--cuda-graphs true|false]
        """;

    public static int Run(string[] args)
    {
        string? model = null;
        var device = "auto";
        int[] batchSizes = [1, 16, 64, 256];
        var inputLength = 128;
        var outputLength = 128;
        var seed = 0;
        var cudaGraphs = true;
        try
        {
            for (var i = 2; i < args.Length; i += 2)
            {
                var value = i + 1 < args.Length ? args[i + 1] : throw new FormatException($"{args[i]} needs a value");
                switch (args[i])
                {
                    case "--model": model = value; break;
                    case "--device": device = value; break;
                    case "--batch-sizes": batchSizes = [.. value.Split(',').Select(v => Positive(v, "--batch-sizes"))]; break;
                    case "--input-len": inputLength = Positive(value, "--input-len"); break;
                    case "--output-len": outputLength = Positive(value, "--output-len"); break;
                    case "--seed": seed = int.Parse(value, CultureInfo.InvariantCulture); break;
                    case "--cuda-graphs": cudaGraphs = bool.TryParse(value, out var on) ? on : throw new FormatException($"--cuda-graphs must be true or false, not '{value}'"); break;
                    default: throw new FormatException($"unknown option {args[i]}");
                }
            }

            if (args.Length < 2 || args[1] != "latency" || model is null)
            {
                throw new FormatException("bench latency --model <dir> is required");
            }
        }
        catch (FormatException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}\n{Usage}");
            return 2;
        }

        using var decoder = DecoderModels.Open(ModelPackage.Load(model), new OnnxSessionOptions { Device = device, CudaGraphs = cudaGraphs });
        var blockSize = decoder.ChooseBlockSize(16);
        var perRow = (inputLength + outputLength + blockSize - 1) / blockSize;
        var maxBatch = batchSizes.Max();
        using var runner = decoder.CreateRunner(maxBatch * perRow, blockSize);
        var vocab = decoder.Spec.VocabularySize;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"model {model} on {decoder.Device}, KV {decoder.Spec.ElementType.ToName()}, block size {blockSize}, input {inputLength}, output {outputLength}, CUDA graphs {(cudaGraphs ? "on" : "off")}"));
        Console.WriteLine();
        Console.WriteLine("| batch | prefill ms | decode step p50 ms | decode step p99 ms | output tok/s (decode) | output tok/s (end to end) |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|");
        var random = new Random(seed);
        foreach (var batchSize in batchSizes)
        {
            // One untimed pass first, so kernel selection and allocator growth are not counted.
            _ = Measure(runner, vocab, batchSize, inputLength, Math.Min(outputLength, 4), perRow, random);
            var (prefill, steps, total) = Measure(runner, vocab, batchSize, inputLength, outputLength, perRow, random);
            Array.Sort(steps);
            var p50 = steps.Length == 0 ? 0 : steps[steps.Length / 2];
            var p99 = steps.Length == 0 ? 0 : steps[Math.Min(steps.Length - 1, (int)(steps.Length * 0.99))];
            var decodeRate = p50 > 0 ? batchSize / (p50 / 1000) : 0;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {batchSize} | {prefill:F2} | {p50:F3} | {p99:F3} | {decodeRate:F0} | {batchSize * outputLength / (total / 1000):F0} |"));
        }

        return 0;
    }

    internal static (double PrefillMs, double[] StepMs, double TotalMs) Measure(IModelRunner runner, int vocab, int batchSize, int inputLength, int outputLength, int perRow, Random random)
    {
        var batch = new ForwardBatch();
        var tables = new int[batchSize][];
        var last = new int[batchSize];
        for (var r = 0; r < batchSize; r++)
        {
            tables[r] = [.. Enumerable.Range(r * perRow, perRow)];
            var prompt = new int[inputLength];
            for (var t = 0; t < inputLength; t++)
            {
                prompt[t] = random.Next(10, vocab);
            }

            // Each row's sequence id, as the engine gives it: runners that keep per-sequence state between steps (the
            // dense runner's decode bucket) recognise a continuing row by it, and rebuild their state for an anonymous one.
            batch.AddRow(prompt, 0, tables[r], RowLogits.Last, sequenceId: r);
        }

        var logits = runner.ReportsArgmax ? [] : new float[batchSize * vocab];
        batch.DistributionsWanted = !runner.ReportsArgmax;
        var started = Stopwatch.GetTimestamp();
        runner.Forward(batch, logits);
        var prefill = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        Next(runner, batch, logits, vocab, last);
        var steps = new double[outputLength - 1];
        Span<int> token = stackalloc int[1];
        for (var s = 0; s < outputLength - 1; s++)
        {
            batch.Clear();
            for (var r = 0; r < batchSize; r++)
            {
                token[0] = last[r];
                batch.AddRow(token, inputLength + s, tables[r], RowLogits.Last, sequenceId: r);
            }

            batch.DistributionsWanted = !runner.ReportsArgmax;
            var stepStarted = Stopwatch.GetTimestamp();
            runner.Forward(batch, logits);
            Next(runner, batch, logits, vocab, last);
            steps[s] = Stopwatch.GetElapsedTime(stepStarted).TotalMilliseconds;
        }

        return (prefill, steps, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    private static void Next(IModelRunner runner, ForwardBatch batch, float[] logits, int vocab, int[] last)
    {
        for (var r = 0; r < last.Length; r++)
        {
            last[r] = runner.ReportsArgmax ? batch.Argmax[r] : LogitMath.ArgMax(logits.AsSpan(r * vocab, vocab));
        }
    }

    private static int Positive(string value, string option) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw new FormatException($"{option} must be a positive integer, not '{value}'");
}
