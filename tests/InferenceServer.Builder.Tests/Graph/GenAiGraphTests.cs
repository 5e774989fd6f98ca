// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json.Nodes;
using InferenceServer.Builder.Inspection;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// <c>build --graph genai</c>: the onnxruntime-genai contract (GroupQueryAttention fed seqlens_k and
/// total_sequence_length from the mask, contiguous past/present rows, no position_ids), served by the server's own
/// <see cref="DenseKvRunner"/> with continuous batching, reproduces transformers' references.
/// </summary>
public sealed class GenAiGraphTests
{
    private const int BlockSize = 16;
    private const int GreedySteps = 12;

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    [InlineData("llama-pruned")]
    [InlineData("qwen2-moe")]
    [InlineData("mixtral")]
    public void FirstStepLogits_AllPromptsInOnePaddedBatch_MatchTransformers(string fixture)
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(Build(fixture)));
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

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    [InlineData("llama-pruned")]
    [InlineData("qwen3-moe")]
    public void Greedy_StaggeredArrivals_PrefillBesideDecode_MatchesTransformers(string fixture)
    {
        // Case r joins at step 2r: its prompt shares a step with the others' one-token decodes (padded new tokens).
        using var runner = new DenseKvRunner(OnnxDecoderModel.Open(ModelPackage.Load(Build(fixture))), 64, BlockSize);
        var cases = BuiltModels.References(fixture);
        var generated = BuiltDecoderTests.Decode(runner, cases, GreedySteps, arrival: r => 2 * r);
        for (var r = 0; r < cases.Count; r++)
        {
            Assert.Equal(cases[r].Greedy, generated[r]);
        }
    }

    [Fact]
    public void TinyPycoder_GenAiGraph_ReproducesTheReferenceGreedyContinuations()
    {
        var checkpoint = Path.Combine(BuiltModels.Root, "models", "tiny-pycoder");
        var folder = BuiltModels.TempDirectory("tiny-pycoder-genai");
        ModelBuilder.Build(new BuildOptions { CheckpointDirectory = checkpoint, OutputDirectory = folder, Graph = "genai" });
        using var runner = new DenseKvRunner(OnnxDecoderModel.Open(ModelPackage.Load(folder)), 64, BlockSize);
        var cases = BuiltModels.ReferencesAt(Path.Combine(checkpoint, "reference.json"));
        var generated = BuiltDecoderTests.Decode(runner, cases, 48, arrival: r => 3 * r);
        for (var r = 0; r < cases.Count; r++)
        {
            Assert.Equal(cases[r].Greedy, generated[r]);
        }
    }

    [Fact]
    public void FolderWithoutTheServersSection_IsReadAsAGenAiFolderAndDecodesTheSame()
    {
        // What the GenAI builder writes has no inference_server section: the loader takes the names from
        // model.decoder and the contiguous-row layout from their absence.
        var folder = BuiltModels.TempDirectory("llama-gqa-genai-plain");
        foreach (var file in Directory.GetFiles(Build("llama-gqa")))
        {
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)), overwrite: true);
        }

        var configPath = Path.Combine(folder, ModelBuilder.GenAiConfigFileName);
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        Assert.True(config.Remove("inference_server"));
        File.WriteAllText(configPath, config.ToJsonString());

        var package = ModelPackage.Load(folder);
        Assert.Null(package.GraphKind);
        Assert.True(package.Io.ContiguousRows);
        using var runner = new DenseKvRunner((OnnxDecoderModel)DecoderModels.Open(package, new OnnxSessionOptions { Device = "cpu" }), 64, BlockSize);
        var cases = BuiltModels.References("llama-gqa");
        var generated = BuiltDecoderTests.DecodeTogether(runner, cases, GreedySteps);
        for (var r = 0; r < cases.Count; r++)
        {
            Assert.Equal(cases[r].Greedy, generated[r]);
        }
    }

    [Fact]
    public void Int4GenAiGraph_RunsOnTheCpu_WithMatMulNBitsAndGroupQueryAttention()
    {
        var folder = BuiltModels.TempDirectory("llama-gqa-genai-int4");
        var result = ModelBuilder.Build(new BuildOptions { CheckpointDirectory = BuiltModels.Fixture("llama-gqa"), OutputDirectory = folder, Graph = "genai", DType = "int4" });
        Assert.Equal((ModelBuilder.GenAiGraph, ModelBuilder.GroupQueryAttentionOp), (result.Graph, result.AttentionOp));
        var ops = ModelInspector.Inspect(folder).Ops.ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal(3, ops["com.microsoft.GroupQueryAttention"]);
        Assert.Equal(12, ops["com.microsoft.MatMulNBits"]);
        Assert.False(ops.ContainsKey("ai.onnx.Attention"));

        // Served: first-step argmax equals the reference's wherever its top-2 margin is clear of int4's error.
        using var runner = new DenseKvRunner(OnnxDecoderModel.Open(ModelPackage.Load(folder)), 64, BlockSize);
        var generated = BuiltDecoderTests.DecodeTogether(runner, BuiltModels.References("llama-gqa"), 1);
        Assert.Equal(4, generated.Length);
        Assert.Equal(BuiltModels.References("llama-gqa")[0].Greedy[0], generated[0][0]);
    }

    [Fact]
    public void GenAiConfig_NamesTheGenAiInputsAndNoPositionIds()
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Build("llama-gqa"), ModelBuilder.GenAiConfigFileName)))!;
        var inputs = config["model"]!["decoder"]!["inputs"]!.AsObject();
        Assert.Equal(["input_ids", "attention_mask", "past_key_names", "past_value_names"], inputs.Select(p => p.Key).ToArray());
        Assert.Equal("genai-v1", (string?)config["inference_server"]!["graph"]);
    }

    [Theory]
    [InlineData("llama-moh", "MoH")]
    [InlineData("deepseek-v3-mla", "MLA")]
    public void UnsupportedAttention_IsRefusedForTheGenAiGraph(string fixture, string kind)
    {
        var ex = Assert.Throws<ModelBuildException>(() => ModelBuilder.Build(new BuildOptions { CheckpointDirectory = BuiltModels.Fixture(fixture), OutputDirectory = BuiltModels.TempDirectory(fixture + "-genai"), Graph = "genai" }));
        Assert.Contains(kind, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("fp16", "cuda")]
    [InlineData("fp32", "cuda")]
    public void GenAiGraphForCuda_IsRefusedWithTheReason(string dtype, string device)
    {
        Assert.False(BuilderCommand.TryParse(["--checkpoint", "c", "--out", "o", "--graph", "genai", "--dtype", dtype, "--device", device], out _, out var problem));
        Assert.Contains("--graph genai is built for --device cpu", problem, StringComparison.Ordinal);
    }

    private static string Build(string fixture)
    {
        var folder = BuiltModels.TempDirectory(fixture + "-genai-fp32");
        if (!File.Exists(Path.Combine(folder, ModelBuilder.GraphFileName)))
        {
            ModelBuilder.Build(new BuildOptions { CheckpointDirectory = BuiltModels.Fixture(fixture), OutputDirectory = folder, Graph = "genai" });
        }

        return folder;
    }
}
