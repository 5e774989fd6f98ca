// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Builder.Tests.Graph;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.GpuTests;

/// <summary>
/// The builder's paged fp16/bf16 graphs on the CUDA device, run by <see cref="PagedDeviceRunner"/> with the KV pools on
/// the device, against transformers' fp32 references: first-step logits within the dtype's tolerance, and greedy tokens
/// equal wherever the reference's top-2 margin exceeds twice that tolerance (below it, rounding may rightly flip the
/// choice, and the continuation after a flip is another sequence).
/// </summary>
public sealed class PagedRunnerTests(ITestOutputHelper output)
{
    /// <summary>Largest |logit - fp32 reference| accepted, per dtype (logits of the fixtures are of order 1).</summary>
    private static readonly Dictionary<string, float> Tolerance = new(StringComparer.Ordinal) { ["fp16"] = 0.02f, ["bf16"] = 0.08f };

    public static TheoryData<string, string, bool> Fixtures => new()
    {
        { "llama-gqa", "fp16", true },
        { "llama-gqa", "fp16", false },
        { "llama-gqa", "bf16", true },
        { "qwen2", "fp16", true },
        { "qwen2", "bf16", true },
        { "llama-pruned", "fp16", true },
        { "llama-moh", "fp16", true },
        { "qwen2-moe", "fp16", true },
        { "qwen3-moe", "fp16", true },
        { "mixtral", "fp16", true },
        { "mixtral", "bf16", true },
    };

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void FirstStepLogits_AllPromptsInOnePackedBatch_WithinTolerance(string fixture, string dtype, bool attentionMetadata)
    {
        SkipWithoutCuda();
        using var model = Open(fixture, dtype, attentionMetadata);
        var cases = GpuFixtures.References(fixture);
        var vocab = model.Spec.VocabularySize;
        using var runner = model.CreateRunner(cases.Count, model.ChooseBlockSize(16));
        var batch = new ForwardBatch();
        for (var r = 0; r < cases.Count; r++)
        {
            // Blocks in reverse order, so a runner that ignored the table would read another row's cache.
            batch.AddRow(cases[r].Prompt, 0, [cases.Count - 1 - r], RowLogits.Last);
        }

        var logits = new float[cases.Count * vocab];
        runner.Forward(batch, logits);
        var worst = 0f;
        for (var r = 0; r < cases.Count; r++)
        {
            var row = logits.AsSpan(r * vocab, vocab);
            var expected = cases[r].FirstStepLogits;
            for (var i = 0; i < vocab; i++)
            {
                worst = Math.Max(worst, Math.Abs(row[i] - expected[i]));
            }

            Assert.Equal(LogitMath.ArgMax(row), batch.Argmax[r]);
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{fixture} {dtype}: max |logit - fp32 reference| = {worst:G3} over {cases.Count} prompts (tolerance {Tolerance[dtype]})"));
        Assert.True(worst <= Tolerance[dtype], $"max |logit - reference| {worst} exceeds {Tolerance[dtype]}");
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Greedy_StaggeredChunkedPrefillBesideDecodes_MatchesTransformersWhereDecided(string fixture, string dtype, bool attentionMetadata) =>
        StaggeredGreedy(fixture, dtype, attentionMetadata, cudaGraphs: false);

    [Theory]
    [InlineData("llama-gqa", "fp16")]
    [InlineData("qwen2", "bf16")]
    [InlineData("llama-moh", "fp16")]
    [InlineData("qwen2-moe", "fp16")]
    [InlineData("deepseek-v3-mla", "fp16")]
    [InlineData("deepseek-v3-dense-mla", "bf16")]
    public void Greedy_WithCudaGraphs_DecodeStepsReplayed_MatchesTransformersWhereDecided(string fixture, string dtype) =>
        StaggeredGreedy(fixture, dtype, attentionMetadata: true, cudaGraphs: true);

    /// <summary>
    /// <c>build --mla-attention mha</c> (ADR 0008): one MultiHeadAttention a layer over the gathered blocks, eager and
    /// replayed. Opt-in with the probes (<c>INFERENCE_SERVER_GPU_PROBES=1</c>, bench/gpu/README.md): the op's fused kernel
    /// is new to this server, and a failed launch may end the process's CUDA context. Written 2026-12-08 without a GPU.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Greedy_MhaMlaAttention_MatchesTransformersWhereDecided(bool cudaGraphs)
    {
        if (GpuFixtures.ProbesDisabledReason is { } probes)
        {
            Assert.Skip(probes);
        }

        StaggeredGreedy("deepseek-v3-mla", "fp16", attentionMetadata: true, cudaGraphs, mlaAttention: "mha");
    }

    private void StaggeredGreedy(string fixture, string dtype, bool attentionMetadata, bool cudaGraphs, string mlaAttention = "gather")
    {
        SkipWithoutCuda();
        using var model = Open(fixture, dtype, attentionMetadata, cudaGraphs, mlaAttention);
        var cases = GpuFixtures.References(fixture);
        using var runner = model.CreateRunner(cases.Count, model.ChooseBlockSize(16));
        var tokens = cases.Select(c => new List<int>(c.Prompt)).ToArray();
        var computed = new int[cases.Count];
        var chunks = new int[cases.Count];
        var batch = new ForwardBatch();
        for (var step = 0; tokens.Select((t, i) => t.Count - cases[i].Prompt.Length < cases[i].Greedy.Length).Any(x => x); step++)
        {
            batch.Clear();
            var rows = new List<int>();
            for (var i = 0; i < cases.Count; i++)
            {
                // Case i arrives at step i; its prompt goes in chunks of 3 tokens, beside the earlier cases' decodes.
                if (step < i || tokens[i].Count - cases[i].Prompt.Length >= cases[i].Greedy.Length)
                {
                    continue;
                }

                var remaining = tokens[i].Count - computed[i];
                chunks[i] = computed[i] < cases[i].Prompt.Length ? Math.Min(3, remaining) : remaining;
                var last = computed[i] + chunks[i] == tokens[i].Count;
                batch.AddRow(tokens[i].GetRange(computed[i], chunks[i]).ToArray(), computed[i], [cases.Count - 1 - i], last ? RowLogits.Last : RowLogits.None);
                rows.Add(i);
            }

            Assert.True(step < 200, "the staggered run did not finish");

            // Every other step brings the logits back too (a sampling row in the batch), whose argmax must agree.
            batch.DistributionsWanted = step % 2 == 1;
            var logits = batch.DistributionsWanted ? new float[batch.LogitRowCount * model.Spec.VocabularySize] : [];
            runner.Forward(batch, logits);
            var logitRow = 0;
            foreach (var i in rows)
            {
                computed[i] += chunks[i];
                if (computed[i] == tokens[i].Count)
                {
                    if (batch.DistributionsWanted)
                    {
                        Assert.Equal(LogitMath.ArgMax(logits.AsSpan(logitRow * model.Spec.VocabularySize, model.Spec.VocabularySize)), batch.Argmax[logitRow]);
                    }

                    tokens[i].Add(batch.Argmax[logitRow++]);
                }
            }
        }

        var compared = 0;
        for (var i = 0; i < cases.Count; i++)
        {
            var generated = tokens[i].GetRange(cases[i].Prompt.Length, cases[i].Greedy.Length);
            for (var t = 0; t < generated.Count; t++)
            {
                if (cases[i].Top2Margin[t] <= 2 * Tolerance[dtype])
                {
                    break;
                }

                Assert.True(cases[i].Greedy[t] == generated[t], $"case {i} token {t}: {generated[t]} != reference {cases[i].Greedy[t]} (margin {cases[i].Top2Margin[t]})");
                compared++;
            }
        }

        var captured = runner is PagedDeviceRunner paged ? paged.CapturedShapes : 0;
        output.WriteLine($"{fixture} {dtype}{(cudaGraphs ? $" (CUDA graphs, {captured} decode shapes captured)" : string.Empty)}: {compared} greedy tokens compared (the rest follow a step whose reference margin is within 2x tolerance)");
        Assert.True(!cudaGraphs || captured > 0, "CUDA graphs on, but no decode step was captured");
        Assert.True(compared > 0, "no token was decided clearly enough to compare");
    }

    /// <summary>
    /// A replayed decode graph computes what the same step computes eagerly: the same prompts are decoded by two runners
    /// of one graph, one eager (with logits) and one replaying CUDA graphs, both fed the eager run's tokens (teacher
    /// forcing), several steps per shape so that ONNX Runtime's warm-up runs, its capture and its replays all occur.
    /// Wherever the eager top-2 margin exceeds a quarter of the dtype's tolerance, the replayed argmax must be the eager one; a value
    /// frozen at capture (an input read from a stale buffer, a host-side computation not replayed) gives other tokens
    /// at the first replay. The greedy comparison with transformers above stops at the first small reference margin and
    /// so may never reach a replay; this one compares every replayed step.
    /// </summary>
    [Theory]
    [InlineData("llama-gqa", "fp16")]
    [InlineData("qwen2-moe", "fp16")]
    [InlineData("deepseek-v3-mla", "fp16")]
    [InlineData("deepseek-v3-dense-mla", "bf16")]
    public void ReplayedDecodeSteps_GiveTheEagerTokens(string fixture, string dtype)
    {
        SkipWithoutCuda();
        using var eagerModel = Open(fixture, dtype, attentionMetadata: true);
        using var replayedModel = Open(fixture, dtype, attentionMetadata: true, cudaGraphs: true);
        var cases = GpuFixtures.References(fixture);
        var rows = Math.Min(2, cases.Count);
        const int Steps = 12;
        var blockSize = eagerModel.ChooseBlockSize(16);
        var perRow = (cases.Take(rows).Max(c => c.Prompt.Length) + Steps + blockSize) / blockSize;
        using var eager = eagerModel.CreateRunner(rows * perRow, blockSize);
        using var replayed = (PagedDeviceRunner)replayedModel.CreateRunner(rows * perRow, blockSize);
        var vocab = eagerModel.Spec.VocabularySize;
        var tables = Enumerable.Range(0, rows).Select(r => Enumerable.Range(r * perRow, perRow).ToArray()).ToArray();
        var tokens = Enumerable.Range(0, rows).Select(r => new List<int>(cases[r].Prompt)).ToArray();
        var logits = new float[rows * vocab];
        var compared = 0;
        for (var step = 0; step <= Steps; step++)
        {
            // Step 0 is the prompts' prefill, then one token per row per step: the same rows, the same shape.
            var eagerBatch = new ForwardBatch { DistributionsWanted = true };
            var replayedBatch = new ForwardBatch { DistributionsWanted = false };
            for (var r = 0; r < rows; r++)
            {
                var from = step == 0 ? 0 : tokens[r].Count - 1;
                var input = tokens[r].GetRange(from, tokens[r].Count - from).ToArray();
                eagerBatch.AddRow(input, from, tables[r], RowLogits.Last);
                replayedBatch.AddRow(input, from, tables[r], RowLogits.Last);
            }

            eager.Forward(eagerBatch, logits);
            replayed.Forward(replayedBatch, Span<float>.Empty);
            for (var r = 0; r < rows; r++)
            {
                var (best, margin) = TopTwoMargin.Of(logits.AsSpan(r * vocab, vocab));
                Assert.Equal(best, eagerBatch.Argmax[r]);
                // The replay runs the eager step's kernels on the same inputs: only a margin within a fraction of the
                // dtype's rounding may flip (reductions whose order is not fixed).
                if (step > 0 && margin > Tolerance[dtype] / 4)
                {
                    Assert.True(best == replayedBatch.Argmax[r], $"{fixture} {dtype}, row {r}, decode step {step} ({replayed.CapturedShapes} shapes captured): replayed {replayedBatch.Argmax[r]}, eager {best} (eager margin {margin})");
                    compared++;
                }

                tokens[r].Add(best);
            }
        }

        output.WriteLine($"{fixture} {dtype}: {compared} of {rows * Steps} decode tokens compared, {replayed.CapturedShapes} shapes captured");
        Assert.True(replayed.CapturedShapes > 0, "no decode step was captured");
        Assert.True(compared >= rows * Steps / 2, $"only {compared} decode tokens were decided clearly enough to compare");
    }

    /// <summary>
    /// <see cref="PaddedAttentionPlan"/>'s padding rule: with no padding allowed, a step of prompts of unlike lengths beside
    /// decodes runs as the decodes, then the prompts longest first, one call per length (not in row order), and every row
    /// gets the logits the whole padded step gives it, in its own place.
    /// </summary>
    [Theory]
    [InlineData("deepseek-v3-mla", "fp16")]
    [InlineData("deepseek-v3-dense-mla", "bf16")]
    public void PaddingCut_PromptsLongestFirst_GiveTheWholeStepsLogits(string fixture, string dtype)
    {
        SkipWithoutCuda();
        using var wholeModel = Open(fixture, dtype, attentionMetadata: true);
        using var cutModel = Open(fixture, dtype, attentionMetadata: true);
        var prompts = GpuFixtures.References(fixture).Select(c => c.Prompt).Where(p => p.Length > 1).ToList();
        var blockSize = wholeModel.ChooseBlockSize(16);
        var perRow = (prompts.Max(p => p.Length) + 2 + blockSize) / blockSize;
        var rows = 1 + prompts.Count;
        using var whole = (PagedDeviceRunner)wholeModel.CreateRunner(rows * perRow, blockSize);
        using var cut = (PagedDeviceRunner)cutModel.CreateRunner(rows * perRow, blockSize);
        whole.PaddingBudgetBytes = long.MaxValue;
        cut.PaddingBudgetBytes = 0;
        var vocab = wholeModel.Spec.VocabularySize;
        var tables = Enumerable.Range(0, rows).Select(r => Enumerable.Range(r * perRow, perRow).ToArray()).ToArray();

        // Row 0 decodes after its own one-step prompt; rows 1.. are the fixture's prompts (shortest first: the cut reverses them).
        int[] first = [.. prompts[0].Take(2)];
        foreach (var runner in new[] { whole, cut })
        {
            var prefill = new ForwardBatch { DistributionsWanted = true };
            prefill.AddRow(first, 0, tables[0], RowLogits.Last);
            runner.Forward(prefill, new float[vocab]);
        }

        var wholeBatch = new ForwardBatch { DistributionsWanted = true };
        var cutBatch = new ForwardBatch { DistributionsWanted = true };
        foreach (var batch in new[] { wholeBatch, cutBatch })
        {
            batch.AddRow([first[^1]], first.Length, tables[0], RowLogits.Last);
            foreach (var (prompt, r) in prompts.OrderBy(p => p.Length).Select((p, i) => (p, i + 1)))
            {
                batch.AddRow(prompt, 0, tables[r], RowLogits.Last);
            }
        }

        var wholeLogits = new float[rows * vocab];
        var cutLogits = new float[rows * vocab];
        whole.Forward(wholeBatch, wholeLogits);
        cut.Forward(cutBatch, cutLogits);
        Assert.Equal(0, whole.CutSteps);
        Assert.Equal(1, cut.CutSteps);
        var worst = 0f;
        for (var r = 0; r < rows; r++)
        {
            var (_, difference) = CompareCutRow($"{fixture} {dtype}, row {r}", dtype, wholeLogits.AsSpan(r * vocab, vocab), cutLogits.AsSpan(r * vocab, vocab), cutBatch.Argmax[r]);
            worst = Math.Max(worst, difference);
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{fixture} {dtype}: max |cut - whole| logit = {worst:G3} over {rows} rows"));
        Assert.True(worst <= Tolerance[dtype], $"max |cut - whole| {worst} exceeds {Tolerance[dtype]}");
    }

    /// <summary>
    /// <see cref="PaddedAttentionPlan"/>: an MLA step cut into calls gives the logits of the same steps run whole. The budget
    /// is lowered to what the decode rows take together, so a step that mixes a prompt with decodes runs as one call for
    /// the decodes and the prompt alone in chunks of a few tokens, each over only the blocks it has reached. The rows are
    /// staggered so that most steps mix one row's prompt with the other rows' decodes. Both runners are eager here (the
    /// logits are wanted); replayed decode calls are <see cref="ReplayedDecodeSteps_GiveTheEagerTokens"/>'s subject.
    /// </summary>
    [Theory]
    [InlineData("deepseek-v3-mla", "fp16")]
    [InlineData("deepseek-v3-dense-mla", "bf16")]
    public void CutMlaSteps_GiveTheWholeStepsLogits(string fixture, string dtype)
    {
        SkipWithoutCuda();
        using var wholeModel = Open(fixture, dtype, attentionMetadata: true);
        using var cutModel = Open(fixture, dtype, attentionMetadata: true);
        // Prompts of several tokens only: a one-token prompt beside decodes is a decode-shaped step, which is not cut
        // (the fixtures' third prompt is one token; the H100 run of 2026-12-07 counted 1 mixed step of 2 for it).
        var cases = GpuFixtures.References(fixture).Where(c => c.Prompt.Length > 1).ToList();
        var rows = Math.Min(3, cases.Count);
        const int Steps = 8;
        var blockSize = wholeModel.ChooseBlockSize(16);
        var perRow = (cases.Take(rows).Max(c => c.Prompt.Length) + Steps + rows + blockSize) / blockSize;
        using var whole = wholeModel.CreateRunner(rows * perRow, blockSize);
        using var cut = (PagedDeviceRunner)cutModel.CreateRunner(rows * perRow, blockSize);
        var heads = cutModel.Spec.AttentionLayers.Max(l => l.QueryHeads);
        cut.ScoreBudgetBytes = PaddedAttentionPlan.ScoreBytes(rows, 1, heads, perRow * blockSize, cutModel.Spec.KvElementBytes);
        var vocab = wholeModel.Spec.VocabularySize;
        var tables = Enumerable.Range(0, rows).Select(r => Enumerable.Range(r * perRow, perRow).ToArray()).ToArray();
        var tokens = Enumerable.Range(0, rows).Select(r => new List<int>(cases[r].Prompt)).ToArray();
        var computed = new int[rows];
        var wholeLogits = new float[rows * vocab];
        var cutLogits = new float[rows * vocab];
        var worst = 0f;
        var mixed = 0;
        for (var step = 0; step < Steps + rows; step++)
        {
            // Row r starts at step r: its prompt beside the earlier rows' decodes.
            var wholeBatch = new ForwardBatch { DistributionsWanted = true };
            var cutBatch = new ForwardBatch { DistributionsWanted = true };
            var active = new List<int>();
            for (var r = 0; r < rows && r <= step; r++)
            {
                var input = tokens[r].GetRange(computed[r], tokens[r].Count - computed[r]).ToArray();
                wholeBatch.AddRow(input, computed[r], tables[r], RowLogits.Last);
                cutBatch.AddRow(input, computed[r], tables[r], RowLogits.Last);
                active.Add(r);
            }

            mixed += wholeBatch.MaxNewTokens > 1 && wholeBatch.RowCount > 1 ? 1 : 0;
            whole.Forward(wholeBatch, wholeLogits);
            cut.Forward(cutBatch, cutLogits);
            for (var i = 0; i < active.Count; i++)
            {
                var r = active[i];
                var (best, difference) = CompareCutRow($"{fixture} {dtype}, step {step}, row {r}", dtype, wholeLogits.AsSpan(i * vocab, vocab), cutLogits.AsSpan(i * vocab, vocab), cutBatch.Argmax[i]);
                worst = Math.Max(worst, difference);
                computed[r] = tokens[r].Count;
                tokens[r].Add(best);
            }
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{fixture} {dtype}: max |cut - whole| logit = {worst:G3} over {Steps + rows} steps ({mixed} mixed)"));
        Assert.True(mixed >= rows - 1, $"{mixed} steps mixed a prompt with decodes, {rows - 1} expected");
        Assert.True(cut.CutSteps >= rows - 1, $"{cut.CutSteps} steps ran cut, {rows - 1} expected");
        Assert.True(worst <= Tolerance[dtype], $"max |cut - whole| {worst} exceeds {Tolerance[dtype]}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void DecodeStep_SteadyState_AllocatesNothingOnTheHost(bool cudaGraphs)
    {
        SkipWithoutCuda();
        using var model = Open("llama-gqa", "fp16", attentionMetadata: true, cudaGraphs);
        var cases = GpuFixtures.References("llama-gqa");
        using var runner = model.CreateRunner(cases.Count, model.ChooseBlockSize(16));
        var batch = new ForwardBatch();
        var tables = cases.Select((_, r) => new[] { r }).ToArray();
        var next = new int[cases.Count][];
        var lengths = new int[cases.Count];
        for (var r = 0; r < cases.Count; r++)
        {
            batch.AddRow(cases[r].Prompt, 0, tables[r], RowLogits.Last);
            lengths[r] = cases[r].Prompt.Length;
            next[r] = new int[1];
        }

        batch.DistributionsWanted = false;
        runner.Forward(batch, Span<float>.Empty);
        long allocated = 0;
        for (var step = 0; step < 30; step++)
        {
            for (var r = 0; r < cases.Count; r++)
            {
                next[r][0] = batch.Argmax[r];
            }

            batch.Clear();
            for (var r = 0; r < cases.Count; r++)
            {
                batch.AddRow(next[r], lengths[r]++, tables[r], RowLogits.Last);
            }

            batch.DistributionsWanted = false;
            var before = GC.GetAllocatedBytesForCurrentThread();
            runner.Forward(batch, Span<float>.Empty);
            if (step >= 5)
            {
                // The first steps of a new shape create its cached views and bindings (and, with CUDA graphs, are the
                // warm-up and capture runs); after that, nothing.
                allocated += GC.GetAllocatedBytesForCurrentThread() - before;
            }
        }

        output.WriteLine($"host bytes allocated by 25 steady decode steps of {cases.Count} rows{(cudaGraphs ? ", replayed as CUDA graphs" : string.Empty)}: {allocated}");
        Assert.Equal(0, allocated);
    }

    /// <summary>
    /// One logit row of a cut step against the whole step's: asserts the cut's argmax is the whole step's where the whole
    /// step's top-2 margin clears the dtype's tolerance; returns the whole step's argmax and the row's max |cut - whole|.
    /// </summary>
    private static (int Best, float Difference) CompareCutRow(string what, string dtype, ReadOnlySpan<float> whole, ReadOnlySpan<float> cut, int cutArgmax)
    {
        var (best, margin) = TopTwoMargin.Of(whole);
        var difference = 0f;
        for (var v = 0; v < whole.Length; v++)
        {
            difference = Math.Max(difference, Math.Abs(whole[v] - cut[v]));
        }

        if (margin > Tolerance[dtype])
        {
            Assert.True(best == cutArgmax, $"{what}: cut {cutArgmax}, whole {best} (margin {margin})");
        }

        return (best, difference);
    }

    private static PagedDecoderModel Open(string fixture, string dtype, bool attentionMetadata, bool cudaGraphs = false, string mlaAttention = "gather")
    {
        var options = new OnnxSessionOptions { Device = "cuda", CudaGraphs = cudaGraphs };
        var model = Assert.IsType<PagedDecoderModel>(DecoderModels.Open(ModelPackage.Load(GpuFixtures.BuildPaged(fixture, dtype, attentionMetadata, mlaAttention)), options));
        Assert.Equal(attentionMetadata, model.HasAttentionMetadata);
        Assert.Equal(cudaGraphs, model.CudaGraphs);
        return model;
    }

    private static void SkipWithoutCuda()
    {
        if (GpuFixtures.CudaUnavailableReason is { } reason)
        {
            Assert.Skip(reason);
        }
    }
}
