// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// The split form (ADR 0005): the builder's segment graphs, served through <see cref="SplitDecoderModel"/> with attention
/// on CPU backends, reproduce transformers' references: first-step logits, and greedy tokens with rows of different
/// lengths, staggered arrivals and chunked prefill (GQA, pruned, MoH, DeepSeek's MLA with MoE, and Qwen2-MoE / Qwen3-MoE / Mixtral softmax-routed experts), on one backend and with every sequence's blocks alternating between
/// two backends (the LSE merge on every layer).
/// </summary>
public sealed class SplitGraphTests
{
    internal const int BlockSize = 4;
    internal const int GreedySteps = 12;

    [Theory]
    [InlineData("llama-gqa", 3)]
    [InlineData("llama-pruned", 2)]
    [InlineData("llama-moh", 3)]
    [InlineData("deepseek-v3-mla", 3)]
    public void Build_Split_WritesOneSegmentMoreThanAttentionLayers(string fixture, int attentionLayers)
    {
        var folder = BuiltModels.Get(fixture, split: true);
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, ModelBuilder.GenAiConfigFileName)));
        var split = document.RootElement.GetProperty("inference_server").GetProperty("split");
        Assert.Equal(attentionLayers + 1, split.GetProperty("segments").GetArrayLength());
        Assert.Equal(attentionLayers, split.GetProperty("attention").GetArrayLength());
        for (var s = 0; s <= attentionLayers; s++)
        {
            Assert.True(File.Exists(Path.Combine(folder, ModelBuilder.SegmentFileName(s))));
        }

        var kind = split.GetProperty("attention")[0].GetProperty("kind").GetString();
        Assert.Equal(fixture switch { "llama-moh" => "moh", "deepseek-v3-mla" => "mla", _ => "gqa" }, kind);
        Assert.True(File.Exists(Path.Combine(folder, ModelBuilder.GraphFileName)), "the fused graph is built beside the segments");
    }

    [Fact]
    public void Build_SplitInInt4_FailsSayingWhichDTypes()
    {
        var error = Assert.Throws<ModelBuildException>(() => ModelBuilder.Validate(new BuildOptions { CheckpointDirectory = "x", OutputDirectory = "y", DType = "int4", Device = "cuda", Split = true }));
        Assert.Contains("fp32, fp16 or bf16", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_FolderWithoutSplit_SaysHowToGetOne()
    {
        var package = ModelPackage.Load(BuiltModels.Get("llama-gqa"));
        var error = Assert.Throws<ModelPackageException>(() => DecoderModels.Open(package, Options("cpu")));
        Assert.Contains("--split", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cuda:9", "cuda:9: no such CUDA device")]
    [InlineData("tpu", "unknown")]
    public void Open_UnsupportedAttentionDevice_SaysWhat(string device, string expected)
    {
        var package = ModelPackage.Load(BuiltModels.Get("llama-gqa", split: true));
        var error = Assert.Throws<ExecutionProviderException>(() => DecoderModels.Open(package, Options(device)));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    [InlineData("llama-pruned")]
    [InlineData("llama-moh")]
    [InlineData("deepseek-v3-mla")]
    public void FirstStepLogits_AllPromptsPacked_MatchTransformers(string fixture)
    {
        using var model = Open(fixture, "cpu");
        using var runner = model.CreateRunner(256, BlockSize);
        AssertFirstStepLogits(runner, fixture);
    }

    /// <summary>Runs every reference prompt of <paramref name="fixture"/> packed in one step and checks each row's logits against transformers' (1e-4).</summary>
    internal static void AssertFirstStepLogits(IModelRunner runner, string fixture)
    {
        var cases = BuiltModels.References(fixture);
        var vocab = runner.Spec.VocabularySize;
        var batch = new ForwardBatch();
        var block = 0;
        foreach (var (prompt, _, _) in cases)
        {
            var blocks = Enumerable.Range(block, (prompt.Length + BlockSize - 1) / BlockSize).ToArray();
            block += blocks.Length;
            batch.AddRow(prompt, 0, blocks, wantLogits: true);
        }

        var logits = new float[cases.Count * vocab];
        runner.Forward(batch, logits);
        for (var r = 0; r < cases.Count; r++)
        {
            var expected = cases[r].FirstStepLogits;
            for (var i = 0; i < vocab; i++)
            {
                Assert.True(Math.Abs(expected[i] - logits[(r * vocab) + i]) < 1e-4, $"row {r} logit {i}: {logits[(r * vocab) + i]} vs {expected[i]}");
            }
        }
    }

    [Theory]
    [InlineData("llama-gqa", 1)]
    [InlineData("qwen2", 1)]
    [InlineData("llama-pruned", 1)]
    [InlineData("llama-moh", 1)]
    [InlineData("llama-gqa", 2)]
    [InlineData("qwen2", 2)]
    [InlineData("llama-pruned", 2)]
    [InlineData("llama-moh", 2)]
    [InlineData("deepseek-v3-mla", 1)]
    [InlineData("deepseek-v3-mla", 2)]
    [InlineData("qwen2-moe", 1)]
    [InlineData("qwen2-moe", 2)]
    [InlineData("qwen3-moe", 2)]
    [InlineData("mixtral", 2)]
    public void Greedy_StaggeredArrivals_MatchesTransformers(string fixture, int backends)
    {
        // Case r joins at step 2r, its prefill packed beside the others' decodes; with two backends every sequence's
        // blocks alternate between them, so every layer merges two parts per row.
        using var model = Open(fixture, [.. Enumerable.Repeat("cpu", backends)]);
        using var runner = model.CreateRunner(512, BlockSize);
        AssertStaggeredGreedy(runner, fixture, backends);
    }

    /// <summary>
    /// Greedy decoding of <paramref name="fixture"/>'s cases against transformers' tokens, case r joining at step 2r, over
    /// 512 blocks split evenly among <paramref name="backends"/> with every sequence's blocks alternating between them.
    /// </summary>
    internal static void AssertStaggeredGreedy(IModelRunner runner, string fixture, int backends)
    {
        var cases = BuiltModels.References(fixture);
        var tables = new int[cases.Count][];
        var next = new int[backends];
        for (var r = 0; r < cases.Count; r++)
        {
            var blocks = ((cases[r].Prompt.Length + GreedySteps) / BlockSize) + 1;
            tables[r] = new int[blocks];
            for (var j = 0; j < blocks; j++)
            {
                // Blocks of backend b are [b * 256, b * 256 + 256) (512 split evenly); alternate j % backends.
                var b = j % backends;
                tables[r][j] = (b * (512 / backends)) + next[b]++;
            }
        }

        var generated = BuiltDecoderTests.Decode(runner, cases, GreedySteps, arrival: r => 2 * r, tables);
        for (var r = 0; r < cases.Count; r++)
        {
            Assert.Equal(cases[r].Greedy, generated[r]);
        }
    }

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("llama-moh")]
    [InlineData("deepseek-v3-mla")]
    [InlineData("mixtral")]
    public void Greedy_ChunkedPrefillWithoutLogits_MatchesTransformers(string fixture)
    {
        // The first chunk returns no logits (the LM head segment is skipped) and the second continues on its past.
        using var model = Open(fixture, "cpu", "cpu");
        using var runner = model.CreateRunner(128, BlockSize);
        AssertChunkedGreedy(runner, fixture);
    }

    /// <summary>
    /// Each of <paramref name="fixture"/>'s prompts decoded in chunks (<see cref="BuiltDecoderTests.DecodeChunked"/>) over
    /// 128 blocks split between two backends, against transformers' greedy tokens.
    /// </summary>
    internal static void AssertChunkedGreedy(IModelRunner runner, string fixture)
    {
        foreach (var (prompt, greedy, _) in BuiltModels.References(fixture))
        {
            // Blocks from the end of the second backend's range down, then the first's: one run on each side.
            var count = ((prompt.Length + GreedySteps) / BlockSize) + 1;
            var table = Enumerable.Range(0, count).Select(j => j < count / 2 ? 127 - j : j).ToArray();
            Assert.Equal(greedy, BuiltDecoderTests.DecodeChunked(runner, prompt, table, GreedySteps));
        }
    }

    [Theory]
    [InlineData("mla-transmla")]
    [InlineData("mla-dense-bias")]
    public void MlaConvertedVariant_SplitAcrossTwoBackends_MatchesTheReferenceDecoder(string variant)
    {
        // TransMLA's llama_mla (biases on q_proj / kv_a / kv_b, no latent norms, query_pre_attn_scalar) and DeepSeek-V3
        // with attention_bias: the latent + rope key travel to the attention backends, the bias parts stay in the segments.
        var checkpoint = VariantTests.MakeVariant(variant, "split-variant-" + variant);
        var output = BuiltModels.TempDirectory("split-variant-out-" + variant);
        ModelBuilder.Build(new BuildOptions { CheckpointDirectory = checkpoint, OutputDirectory = output, Split = true });
        using var model = DecoderModels.Open(ModelPackage.Load(output), Options("cpu", "cpu"));
        using var runner = model.CreateRunner(512, BlockSize);
        var reference = new ReferenceDecoder(checkpoint);
        var cases = BuiltModels.References("deepseek-v3-mla").Take(3).ToList();
        var tables = cases.Select((c, r) => Enumerable.Range(0, 6).Select(j => ((j % 2) * 256) + (r * 6) + (j / 2)).ToArray()).ToArray();
        var generated = BuiltDecoderTests.Decode(runner, cases, 3, arrival: r => r, tables);
        for (var r = 0; r < cases.Count; r++)
        {
            var tokens = cases[r].Prompt.ToList();
            foreach (var token in generated[r])
            {
                var logits = reference.LastLogits(tokens);
                Assert.Equal(Array.IndexOf(logits, logits.Max()), token);
                tokens.Add(token);
            }
        }
    }

    private static OnnxSessionOptions Options(params string[] attentionDevices) => new() { Device = "cpu", AttentionDevices = attentionDevices };

    private static IDecoderModel Open(string fixture, params string[] attentionDevices) =>
        DecoderModels.Open(ModelPackage.Load(BuiltModels.Get(fixture, split: true)), Options(attentionDevices));
}
