// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Inspection;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// The default model's own checkpoint (<c>models/tiny-pycoder/model.safetensors</c>), built fp32 for the CPU and served
/// through the server's <see cref="DenseKvRunner"/>, decodes exactly the greedy tokens PyTorch produced.
/// </summary>
public sealed class DefaultModelBuildTests
{
    [Fact]
    public void TinyPycoder_BuiltFromItsCheckpoint_ReproducesEveryReferenceGreedyContinuation()
    {
        var checkpoint = Path.Combine(BuiltModels.Root, "models", "tiny-pycoder");
        var output = BuiltModels.TempDirectory("tiny-pycoder-built");
        var result = ModelBuilder.Build(new BuildOptions { CheckpointDirectory = checkpoint, OutputDirectory = output });
        Assert.Equal(4, result.LayerCount);
        Assert.Equal(ModelBuilder.DenseGraph, result.Graph);

        var cases = BuiltModels.ReferencesAt(Path.Combine(checkpoint, "reference.json"));
        Assert.Equal(4, cases.Count);
        Assert.All(cases, c => Assert.Equal(48, c.Greedy.Length));
        using var runner = new DenseKvRunner(OnnxDecoderModel.Open(ModelPackage.Load(output)), 64, 16);
        Assert.Equal(4096, runner.Spec.VocabularySize);

        // All four decoded together, one token a step, the whole 48-token reference continuation.
        var generated = BuiltDecoderTests.DecodeTogether(runner, cases, 48);
        for (var r = 0; r < cases.Count; r++)
        {
            Assert.Equal(cases[r].Greedy, generated[r]);
        }
    }

    [Fact]
    public void TinyPycoder_BuildsThePagedGraph_ForCuda()
    {
        var output = BuiltModels.TempDirectory("tiny-pycoder-fp16");
        var result = ModelBuilder.Build(new BuildOptions
        {
            CheckpointDirectory = Path.Combine(BuiltModels.Root, "models", "tiny-pycoder"),
            OutputDirectory = output,
            DType = "fp16",
            Device = "cuda",
        });
        Assert.Equal(ModelBuilder.PagedGraph, result.Graph);

        // 4 layers x (key + value) x 2 kv heads x 64 x 2 bytes.
        Assert.Equal(4 * 2 * 2 * 64 * 2, result.KvBytesPerToken);
        var inspection = ModelInspector.Inspect(output);
        Assert.Equal(4, inspection.AttentionNodes.Count);
        Assert.All(inspection.AttentionNodes, n => Assert.Equal((ModelBuilder.PagedAttentionOp, 4L, 2L), (n.OpType, n.QueryHeads, n.KvHeads)));
        Assert.Equal(new KvInputInfo(3, 2, 64, 2, 64, 2), inspection.KvInputs[3]);
    }
}
