// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Checkpoint;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// Issue 18's MLA-converted-shape fixtures (DeepSeek-V3 without query LoRA, every layer dense; the second with
/// attention_bias), made by transformers on the GPU machine: the built CPU graph, served through the server's own
/// runner, reproduces them exactly; and the reference decoder that judges the TransMLA variants agrees with them.
/// Skipped until the folders are committed.
/// </summary>
public sealed class ConvertedMlaFixtureTests
{
    private const int BlockSize = 16;
    private const int GreedySteps = 12;

    [FixtureTheory("deepseek-v3-dense-mla", "deepseek-v3-dense-mla-bias")]
    [InlineData("deepseek-v3-dense-mla", false)]
    [InlineData("deepseek-v3-dense-mla-bias", true)]
    public void Config_IsMlaWithoutQueryLoraOrMoe(string fixture, bool bias)
    {
        var config = DecoderConfig.Parse(File.ReadAllText(Path.Combine(BuiltModels.Fixture(fixture), "config.json")), fixture);
        Assert.Null(Assert.IsType<MlaConfig>(config.Mla).QLoraRank);
        Assert.Null(config.Moe);
        using var weights = InferenceServer.Builder.Safetensors.SafetensorsCheckpoint.Open(BuiltModels.Fixture(fixture));
        Assert.Equal(bias, weights.Contains("model.layers.0.self_attn.kv_a_proj_with_mqa.bias"));
        Assert.Equal(bias, weights.Contains("model.layers.0.self_attn.o_proj.bias"));
    }

    [FixtureTheory("deepseek-v3-dense-mla", "deepseek-v3-dense-mla-bias")]
    [InlineData("deepseek-v3-dense-mla")]
    [InlineData("deepseek-v3-dense-mla-bias")]
    public void FirstStepLogits_AllPromptsInOnePaddedBatch_MatchTransformers(string fixture)
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(BuiltModels.Get(fixture)));
        var cases = BuiltModels.References(fixture);
        var vocab = model.Spec.VocabularySize;
        var logits = BuiltDecoderTests.FirstStepLogits(model, cases);
        for (var r = 0; r < cases.Count; r++)
        {
            for (var i = 0; i < vocab; i++)
            {
                Assert.True(Math.Abs(cases[r].FirstStepLogits[i] - logits[(r * vocab) + i]) < 1e-4, $"row {r} logit {i}: {logits[(r * vocab) + i]} vs {cases[r].FirstStepLogits[i]}");
            }
        }
    }

    [FixtureTheory("deepseek-v3-dense-mla", "deepseek-v3-dense-mla-bias")]
    [InlineData("deepseek-v3-dense-mla")]
    [InlineData("deepseek-v3-dense-mla-bias")]
    public void Greedy_TogetherStaggeredAndChunked_MatchesTransformersExactly(string fixture)
    {
        // A fresh runner per schedule: all prompts together, staggered arrivals (prefill beside decode), chunked prefill.
        var cases = BuiltModels.References(fixture);
        DenseKvRunner Runner() => new(OnnxDecoderModel.Open(ModelPackage.Load(BuiltModels.Get(fixture))), 64, BlockSize);
        List<int>[] together, staggered;
        using (var runner = Runner())
        {
            together = BuiltDecoderTests.DecodeTogether(runner, cases, GreedySteps);
        }

        using (var runner = Runner())
        {
            staggered = BuiltDecoderTests.Decode(runner, cases, GreedySteps, arrival: r => 2 * r);
        }

        using var chunked = Runner();
        for (var r = 0; r < cases.Count; r++)
        {
            Assert.Equal(cases[r].Greedy, together[r]);
            Assert.Equal(cases[r].Greedy, staggered[r]);
            var table = Enumerable.Range(0, ((cases[r].Prompt.Length + GreedySteps) / BlockSize) + 1).ToArray();
            Assert.Equal(cases[r].Greedy, BuiltDecoderTests.DecodeChunked(chunked, cases[r].Prompt, table, GreedySteps));
        }
    }

    [FixtureTheory("deepseek-v3-dense-mla", "deepseek-v3-dense-mla-bias")]
    [InlineData("deepseek-v3-dense-mla")]
    [InlineData("deepseek-v3-dense-mla-bias")]
    public void ReferenceDecoder_MatchesTransformers(string fixture) => VariantTests.AssertReferenceDecoderMatchesTransformers(fixture);
}
