// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// The built graphs, served through the server's own <see cref="OnnxDecoderModel"/> and <see cref="DenseKvRunner"/>
/// (right-padded batches, paged KV, present reuse), reproduce transformers' references.
/// </summary>
public sealed class BuiltDecoderTests
{
    private const int BlockSize = 16;
    private const int GreedySteps = 12;

    [Theory]
    [InlineData("llama-gqa", 3, 2, 16, 2, 16)]
    [InlineData("llama-pruned", 2, 1, 16, 1, 16)]
    [InlineData("deepseek-v3-mla", 3, 1, 32, 1, 8)]
    public void KvLayout_AsTheServerReadsIt(string fixture, int kvLayers, int keyHeads, int keyWidth, int valueHeads, int valueWidth)
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(BuiltModels.Get(fixture)));
        Assert.Equal(kvLayers, model.Spec.KvLayers.Count);
        Assert.Equal((keyHeads, keyWidth, valueHeads, valueWidth), (model.Spec.KvLayers[0].KeyHeads, model.Spec.KvLayers[0].KeyWidth, model.Spec.KvLayers[0].ValueHeads, model.Spec.KvLayers[0].ValueWidth));
        if (fixture == "deepseek-v3-mla")
        {
            // The MLA cache: latent 32 + rope key 8 per layer, 3 layers, fp32.
            Assert.Equal(3 * (32 + 8) * 4, model.Spec.KvBytesPerToken);
        }
    }

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    [InlineData("llama-pruned")]
    [InlineData("llama-moh")]
    [InlineData("deepseek-v3-mla")]
    [InlineData("qwen2-moe")]
    [InlineData("qwen3-moe")]
    [InlineData("mixtral")]
    public void FirstStepLogits_AllPromptsInOnePaddedBatch_MatchTransformers(string fixture)
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(BuiltModels.Get(fixture)));
        var cases = BuiltModels.References(fixture);
        var vocab = model.Spec.VocabularySize;
        var logits = FirstStepLogits(model, cases);
        for (var r = 0; r < cases.Count; r++)
        {
            var expected = cases[r].FirstStepLogits;
            Assert.Equal(vocab, expected.Length);
            for (var i = 0; i < vocab; i++)
            {
                Assert.True(Math.Abs(expected[i] - logits[(r * vocab) + i]) < 1e-4, $"row {r} logit {i}: {logits[(r * vocab) + i]} vs {expected[i]}");
            }
        }
    }

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    [InlineData("llama-pruned")]
    [InlineData("llama-moh")]
    [InlineData("deepseek-v3-mla")]
    [InlineData("qwen2-moe")]
    [InlineData("qwen3-moe")]
    [InlineData("mixtral")]
    public void Greedy_AllPromptsDecodedTogether_MatchesTransformers(string fixture)
    {
        // Rows of different lengths in one batch: right-padded past with holes, present fed back between steps.
        using var runner = new DenseKvRunner(OnnxDecoderModel.Open(ModelPackage.Load(BuiltModels.Get(fixture))), 64, BlockSize);
        var cases = BuiltModels.References(fixture);
        var generated = DecodeTogether(runner, cases, GreedySteps);
        for (var r = 0; r < cases.Count; r++)
        {
            Assert.Equal(cases[r].Greedy, generated[r]);
        }
    }

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    [InlineData("llama-pruned")]
    [InlineData("llama-moh")]
    [InlineData("deepseek-v3-mla")]
    [InlineData("qwen2-moe")]
    [InlineData("qwen3-moe")]
    [InlineData("mixtral")]
    public void Greedy_StaggeredArrivals_PrefillBesideDecode_MatchesTransformers(string fixture)
    {
        // Case r joins at step 2r: its prefill shares a batch with the others' decode steps (padded new tokens too).
        using var runner = new DenseKvRunner(OnnxDecoderModel.Open(ModelPackage.Load(BuiltModels.Get(fixture))), 64, BlockSize);
        var cases = BuiltModels.References(fixture);
        var generated = Decode(runner, cases, GreedySteps, arrival: r => 2 * r);
        for (var r = 0; r < cases.Count; r++)
        {
            Assert.Equal(cases[r].Greedy, generated[r]);
        }
    }

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    [InlineData("llama-pruned")]
    [InlineData("llama-moh")]
    [InlineData("deepseek-v3-mla")]
    [InlineData("qwen2-moe")]
    [InlineData("qwen3-moe")]
    [InlineData("mixtral")]
    public void Greedy_OneSequenceWithChunkedPrefill_MatchesTransformers(string fixture)
    {
        // The prompt goes in two chunks (new tokens on top of a past), then one token per step.
        using var runner = new DenseKvRunner(OnnxDecoderModel.Open(ModelPackage.Load(BuiltModels.Get(fixture))), 64, BlockSize);
        foreach (var (prompt, greedy, _) in BuiltModels.References(fixture))
        {
            var table = Enumerable.Range(0, ((prompt.Length + GreedySteps) / BlockSize) + 1).ToArray();
            Assert.Equal(greedy, DecodeChunked(runner, prompt, table, GreedySteps));
        }
    }

    /// <summary>
    /// Greedy-decodes <paramref name="prompt"/> alone for <paramref name="steps"/> tokens over <paramref name="table"/>:
    /// its first half as a chunk that returns no logits, the rest on top of that past, then one token per step.
    /// </summary>
    internal static List<int> DecodeChunked(IModelRunner runner, int[] prompt, int[] table, int steps)
    {
        var logits = new float[runner.Spec.VocabularySize];
        var batch = new ForwardBatch();
        var split = prompt.Length / 2;
        var generated = new List<int>();
        if (split > 0)
        {
            batch.AddRow(prompt.AsSpan(0, split), 0, table, wantLogits: false);
            runner.Forward(batch, logits);
        }

        batch.Clear();
        batch.AddRow(prompt.AsSpan(split), split, table, wantLogits: true);
        runner.Forward(batch, logits);
        generated.Add(LogitMath.ArgMax(logits));
        for (var step = 1; step < steps; step++)
        {
            batch.Clear();
            batch.AddRow([generated[^1]], prompt.Length + step - 1, table, wantLogits: true);
            runner.Forward(batch, logits);
            generated.Add(LogitMath.ArgMax(logits));
        }

        return generated;
    }

    /// <summary>Every case's prompt prefilled in one right-padded batch: the logits of each row's last position, in case order.</summary>
    internal static float[] FirstStepLogits(OnnxDecoderModel model, IReadOnlyList<(int[] Prompt, int[] Greedy, float[] FirstStepLogits)> cases)
    {
        using var runner = new DenseKvRunner(model, 64, BlockSize);
        var batch = new ForwardBatch();
        var block = 0;
        foreach (var (prompt, _, _) in cases)
        {
            var blocks = Enumerable.Range(block, (prompt.Length + BlockSize - 1) / BlockSize).ToArray();
            block += blocks.Length;
            batch.AddRow(prompt, 0, blocks, wantLogits: true);
        }

        var logits = new float[cases.Count * model.Spec.VocabularySize];
        runner.Forward(batch, logits);
        return logits;
    }

    /// <summary>Greedy-decodes every case's prompt for <paramref name="steps"/> tokens, all rows in one batch each step.</summary>
    internal static List<int>[] DecodeTogether(DenseKvRunner runner, IReadOnlyList<(int[] Prompt, int[] Greedy, float[] FirstStepLogits)> cases, int steps) =>
        Decode(runner, cases, steps, arrival: _ => 0);

    /// <summary>
    /// Greedy-decodes every case's prompt for <paramref name="steps"/> tokens, case r's prompt joining the batch at step
    /// <paramref name="arrival"/>(r) and decoding one token per step after it, beside the others; over
    /// <paramref name="tables"/>, or disjoint block tables of <see cref="BlockSize"/> when null.
    /// </summary>
    internal static List<int>[] Decode(IModelRunner runner, IReadOnlyList<(int[] Prompt, int[] Greedy, float[] FirstStepLogits)> cases, int steps, Func<int, int> arrival, int[][]? tables = null)
    {
        var vocab = runner.Spec.VocabularySize;
        tables ??= BlockTables(cases, steps);
        var generated = cases.Select(_ => new List<int>()).ToArray();
        var batch = new ForwardBatch();
        var logits = new float[cases.Count * vocab];
        var rows = new List<int>();
        for (var step = 0; generated.Any(g => g.Count < steps); step++)
        {
            batch.Clear();
            rows.Clear();
            for (var r = 0; r < cases.Count; r++)
            {
                var prompt = cases[r].Prompt;
                if (step == arrival(r))
                {
                    batch.AddRow(prompt, 0, tables[r], wantLogits: true, sequenceId: r);
                    rows.Add(r);
                }
                else if (step > arrival(r) && generated[r].Count < steps)
                {
                    batch.AddRow([generated[r][^1]], prompt.Length + generated[r].Count - 1, tables[r], wantLogits: true, sequenceId: r);
                    rows.Add(r);
                }
            }

            runner.Forward(batch, logits);
            for (var i = 0; i < rows.Count; i++)
            {
                generated[rows[i]].Add(LogitMath.ArgMax(logits.AsSpan(i * vocab, vocab)));
            }
        }

        return generated;
    }

    /// <summary>Disjoint block tables, one per case, each long enough for its prompt and <paramref name="steps"/> more tokens.</summary>
    private static int[][] BlockTables(IReadOnlyList<(int[] Prompt, int[] Greedy, float[] FirstStepLogits)> cases, int steps)
    {
        var tables = new int[cases.Count][];
        var block = 0;
        for (var r = 0; r < cases.Count; r++)
        {
            tables[r] = Enumerable.Range(block, ((cases[r].Prompt.Length + steps) / BlockSize) + 1).ToArray();
            block += tables[r].Length;
        }

        return tables;
    }
}
