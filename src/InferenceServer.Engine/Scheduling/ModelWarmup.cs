// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Engine.Scheduling;

/// <summary>
/// Model steps run once before the scheduler takes requests (<c>--warmup</c>; ADR 0008, "GEMM tactic profiling"), so
/// that what a runner does the first time it meets a shape is not paid by the first requests of that shape: ONNX
/// Runtime's CUDA MoE kernel profiles its GEMM tactics per layer for each new power-of-two token count (about 5 s each
/// for the 27-layer DeepSeek-V2-Lite shape on an H100), and CUDA graphs are captured per decode batch. The plan: every
/// decode batch of the captured buckets (1, 2, 4, 8, 16, 24, ... up to <c>--max-num-seqs</c>; one token per row, three
/// times, since ONNX Runtime captures after regular runs), then prompt steps of every power of two from
/// <see cref="FirstPromptTokens"/> up to <c>--max-num-batched-tokens</c> (and that budget itself), in rows of at most
/// <see cref="RowTokens"/> tokens. Rows start at position 0 in the pool's first blocks, which no sequence owns yet and
/// no prefix hash names, so what the warm-up writes there is overwritten before anything reads it.
/// </summary>
internal static class ModelWarmup
{
    /// <summary>Runs of each decode batch: ONNX Runtime runs a new CUDA-graph shape regularly before it captures it.</summary>
    public const int DecodeRuns = 3;

    /// <summary>The smallest prompt step: token counts below it are the decode batches' (one token a row).</summary>
    public const int FirstPromptTokens = 512;

    /// <summary>The longest row of a prompt step (a step of more tokens has more rows).</summary>
    public const int RowTokens = 512;

    /// <summary>One warm-up step: <paramref name="Rows"/> rows of <paramref name="TokensPerRow"/> tokens from position 0, run <paramref name="Runs"/> times.</summary>
    internal readonly record struct Step(int Rows, int TokensPerRow, int Runs);

    /// <summary>
    /// The steps for a scheduler of <paramref name="maxNumSeqs"/> rows and <paramref name="maxNumBatchedTokens"/> tokens a
    /// step over <paramref name="blockCount"/> blocks of <paramref name="blockSize"/> tokens, for a model of
    /// <paramref name="contextLength"/> positions: no step needs more blocks than the pool has, no row more positions
    /// than the context.
    /// </summary>
    public static List<Step> Plan(int maxNumSeqs, int maxNumBatchedTokens, int blockSize, int blockCount, int contextLength)
    {
        var steps = new List<Step>();
        var maxRows = Math.Min(maxNumSeqs, Math.Min(maxNumBatchedTokens, blockCount));
        foreach (var bucket in CapturedDecode.Buckets(maxRows))
        {
            steps.Add(new Step(Math.Min(bucket, maxRows), 1, DecodeRuns));
        }

        var rowTokens = Math.Max(1, Math.Min(RowTokens, contextLength - 1));
        var blocksPerRow = (rowTokens + blockSize - 1) / blockSize;
        var rowsThatFit = blockCount / blocksPerRow;
        for (var tokens = FirstPromptTokens; rowsThatFit > 0; tokens *= 2)
        {
            // Whole budget at the last step; rows as even as the row length allows, never over the step's tokens.
            var total = Math.Min(tokens, maxNumBatchedTokens);
            var rows = (total + rowTokens - 1) / rowTokens;
            var capped = rows > rowsThatFit;
            rows = Math.Min(rows, rowsThatFit);
            steps.Add(new Step(rows, Math.Min(rowTokens, total / rows), 1));
            if (capped || total == maxNumBatchedTokens)
            {
                break;
            }
        }

        return steps;
    }

    /// <summary>
    /// Runs <paramref name="steps"/> on <paramref name="runner"/> (greedy rows, as a plain request's; logits come back only
    /// from a runner that reports no argmax) and returns the model calls made and how long they took.
    /// </summary>
    public static (int Calls, TimeSpan Elapsed) Run(IModelRunner runner, IReadOnlyList<Step> steps)
    {
        ArgumentNullException.ThrowIfNull(runner);
        var started = Stopwatch.GetTimestamp();
        var batch = new ForwardBatch();
        var vocab = runner.Spec.VocabularySize;
        var calls = 0;
        foreach (var step in steps)
        {
            var blocksPerRow = (step.TokensPerRow + runner.BlockSize - 1) / runner.BlockSize;
            var tokens = new int[step.TokensPerRow];
            for (var t = 0; t < tokens.Length; t++)
            {
                tokens[t] = (t * 7919 + 1) % vocab;
            }

            batch.Clear();
            batch.DistributionsWanted = !runner.ReportsArgmax;
            for (var r = 0; r < step.Rows; r++)
            {
                var table = new int[blocksPerRow];
                for (var b = 0; b < blocksPerRow; b++)
                {
                    table[b] = (r * blocksPerRow) + b;
                }

                batch.AddRow(tokens, 0, table, RowLogits.Last);
            }

            var logits = batch.DistributionsWanted ? new float[batch.LogitRowCount * vocab] : [];
            for (var run = 0; run < step.Runs; run++)
            {
                runner.Forward(batch, logits);
                calls++;
            }
        }

        return (calls, Stopwatch.GetElapsedTime(started));
    }
}
