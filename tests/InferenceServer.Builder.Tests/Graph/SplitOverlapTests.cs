// Licensed under the MIT License. See LICENSE in the repository root.
using System.Reflection;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// ADR 0010 on the CPU split runner: a step run as two micro-batches (<c>--attention-overlap on</c>) gives the logits of
/// the same step run as one, prefill and decode, and steady overlapped decode steps allocate nothing on the step's thread.
/// </summary>
public sealed class SplitOverlapTests
{
    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("llama-moh")]
    [InlineData("deepseek-v3-mla")]
    public void Overlapped_GivesTheSequentialLogits_AndSteadyDecodeAllocatesNothing(string fixture)
    {
        var folder = BuiltModels.Get(fixture, split: true);

        // Four prompts of 8 tokens (the fixture's prompts, cycled): equal work in every row, so the cut stays at two and
        // two from the first step on and the half-batches' shapes repeat (a moving cut creates its new shapes' views once).
        var tokens = BuiltModels.References(fixture).SelectMany(c => c.Prompt).ToArray();
        var cases = Enumerable.Range(0, 4).Select(r => (Prompt: Enumerable.Range(0, 8).Select(i => tokens[((r * 8) + i) % tokens.Length]).ToArray(), Row: r)).ToList();
        using var sequentialModel = Open(folder, AttentionOverlap.Off);
        using var overlappedModel = Open(folder, AttentionOverlap.On);
        var vocab = sequentialModel.Spec.VocabularySize;
        // Blocks longer than any context here: no row's table grows during the run, so what a steady step allocates is
        // not hidden behind the planners' amortized growth (their arrays double when a context crosses into a new block).
        const int BlockSize = 64;
        var blocksPerRow = cases.Max(c => c.Prompt.Length + 40) / BlockSize + 1;
        using var sequential = sequentialModel.CreateRunner(cases.Count * blocksPerRow * 2, BlockSize);
        using var overlapped = overlappedModel.CreateRunner(cases.Count * blocksPerRow * 2, BlockSize);
        var overlappedFlag = overlapped.GetType().GetProperty("LastStepOverlapped", BindingFlags.Instance | BindingFlags.NonPublic)!;

        // Each row's blocks in both pools (even rows' in the lower half, odd rows' in the upper one, interleaved).
        var tables = cases.Select((_, r) => Enumerable.Range(0, blocksPerRow).Select(j => (j % 2 == 0 ? 0 : cases.Count * blocksPerRow) + (r * blocksPerRow) + j).ToArray()).ToArray();
        var lengths = cases.Select(c => c.Prompt.Length).ToArray();
        var batch = new ForwardBatch();
        for (var r = 0; r < cases.Count; r++)
        {
            batch.AddRow(cases[r].Prompt, 0, tables[r], RowLogits.Last);
        }

        var expected = new float[cases.Count * vocab];
        var actual = new float[cases.Count * vocab];
        var next = new int[cases.Count][];
        long allocated = 0;
        var allocatingSteps = 0;
        for (var step = 0; step < 30; step++)
        {
            sequential.Forward(batch, expected);
            var before = GC.GetAllocatedBytesForCurrentThread();
            overlapped.Forward(batch, actual);
            if (step >= 5)
            {
                var bytes = GC.GetAllocatedBytesForCurrentThread() - before;
                allocated += bytes;
                allocatingSteps += bytes > 0 ? 1 : 0;
            }

            Assert.True((bool)overlappedFlag.GetValue(overlapped)!, $"step {step} ran as one micro-batch");
            for (var i = 0; i < expected.Length; i++)
            {
                Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4f, $"step {step}, logit {i}: {actual[i]} overlapped, {expected[i]} as one batch");
            }

            batch.Clear();
            for (var r = 0; r < cases.Count; r++)
            {
                next[r] ??= new int[1];
                next[r][0] = ArgMax(expected.AsSpan(r * vocab, vocab));
                batch.AddRow(next[r], lengths[r]++, tables[r], RowLogits.Last);
            }
        }

        // A steady step allocates nothing: at most a one-off (the runtime's own tiering or bookkeeping, seen once in CI
        // under parallel load) may land in the 25 measured steps; a per-step allocation shows in every one of them.
        Assert.True(allocatingSteps <= 2, $"{allocatingSteps} of 25 steady overlapped steps allocated ({allocated} bytes in all)");
    }

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        var best = 0;
        for (var i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }

        return best;
    }

    private static IDecoderModel Open(string folder, AttentionOverlap overlap) =>
        DecoderModels.Open(ModelPackage.Load(folder), new OnnxSessionOptions { Device = "cpu", AttentionDevices = ["cpu", "cpu"], AttentionOverlap = overlap, IntraOpThreads = 1 });
}
