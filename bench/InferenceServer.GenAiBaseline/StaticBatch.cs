// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using Microsoft.ML.OnnxRuntimeGenAI;

namespace InferenceServer.GenAiBaseline;

/// <summary>
/// Runs equal-length prompts as one static onnxruntime-genai batch with greedy search: the whole batch prefills
/// together, then steps together until every sequence has its tokens. What each sequence sees is the batch's timing.
/// </summary>
internal static class StaticBatch
{
    /// <summary>What one batch produced and how long it took.</summary>
    internal sealed record Result(int[][] Outputs, double TtftMs, double E2eMs, List<double> StepMs);

    /// <summary>
    /// Generates <paramref name="outputLength"/> tokens for each of <paramref name="prompts"/> (all of one length).
    /// With <paramref name="ignoreEos"/> the end-of-sequence token is banned (min_length = max_length) so no row stops early.
    /// </summary>
    public static Result Run(Model model, IReadOnlyList<int[]> prompts, int outputLength, bool ignoreEos)
    {
        var inputLength = prompts[0].Length;
        if (prompts.Any(p => p.Length != inputLength))
        {
            throw new ArgumentException("A static batch needs prompts of one length (no --random-range-ratio).", nameof(prompts));
        }

        var start = Stopwatch.GetTimestamp();
        using var parameters = new GeneratorParams(model);
        parameters.SetSearchOption("batch_size", prompts.Count);
        parameters.SetSearchOption("max_length", inputLength + outputLength);
        parameters.SetSearchOption("do_sample", false);
        if (ignoreEos)
        {
            parameters.SetSearchOption("min_length", inputLength + outputLength);
        }

        using var generator = new Generator(model, parameters);
        var flat = new int[prompts.Count * inputLength];
        for (var i = 0; i < prompts.Count; i++)
        {
            prompts[i].CopyTo(flat, i * inputLength);
        }

        generator.AppendTokens(flat);
        generator.GenerateNextToken();
        var ttft = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        var steps = new List<double>(outputLength);
        while (!generator.IsDone())
        {
            var step = Stopwatch.GetTimestamp();
            generator.GenerateNextToken();
            steps.Add(Stopwatch.GetElapsedTime(step).TotalMilliseconds);
        }

        var e2e = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        var outputs = new int[prompts.Count][];
        for (var i = 0; i < prompts.Count; i++)
        {
            outputs[i] = generator.GetSequence((ulong)i)[inputLength..].ToArray();
        }

        return new Result(outputs, ttft, e2e, steps);
    }
}
