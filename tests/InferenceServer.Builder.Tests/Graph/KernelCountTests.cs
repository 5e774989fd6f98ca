// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Onnx.Proto;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// ADR 0007's node counts per decoder layer, by op type, before (<c>--fuse off</c>) and after the fusion: a middle layer
/// of llama-gqa (layer 1 of 3), whose nodes are those named <c>l1_*</c> (a fused residual add + norm carries the norm's name).
/// </summary>
public sealed class KernelCountTests
{
    [Theory]
    [InlineData("fp16", "cuda", false, "Add:2 Gemm:5 Mul:2 PagedAttention:1 Sigmoid:1 SimplifiedLayerNormalization:2")]
    [InlineData("fp16", "cuda", true, "Gemm:4 Mul:2 PagedAttention:1 Sigmoid:1 SkipSimplifiedLayerNormalization:2 Split:1")]
    [InlineData("bf16", "cuda", true, "Add:2 Gemm:4 Mul:2 PagedAttention:1 Sigmoid:1 SimplifiedLayerNormalization:2 Split:1")]
    [InlineData("int4", "cuda", false, "Add:2 Gemm:0 MatMulNBits:5 Mul:2 PagedAttention:1 Sigmoid:1 SimplifiedLayerNormalization:2")]
    [InlineData("int4", "cuda", true, "Gemm:0 MatMulNBits:4 Mul:2 PagedAttention:1 Sigmoid:1 SkipSimplifiedLayerNormalization:2 Split:1")]
    [InlineData("fp32", "cpu", false, "Add:6 Attention:1 Concat:4 Div:2 Gemm:7 Mul:12 Pow:2 ReduceMean:2 Reshape:6 Sigmoid:1 Split:2 Sqrt:2 Sub:2")]
    [InlineData("fp32", "cpu", true, "Attention:1 Gemm:4 Mul:2 Reshape:4 RotaryEmbedding:2 Sigmoid:1 SkipSimplifiedLayerNormalization:2 Split:2")]
    public void MiddleLayer_HasTheseNodesByOpType(string dtype, string device, bool fuse, string expected)
    {
        var model = Build(dtype, device, fuse);
        Assert.Equal(expected, Describe(LayerOps(model, 1)));
    }

    [Theory]
    [InlineData("fp16", "cuda", false, 45)]
    [InlineData("fp16", "cuda", true, 39)]
    [InlineData("fp32", "cpu", false, 188)]
    [InlineData("fp32", "cpu", true, 79)]
    public void WholeGraph_HasThisManyNodes(string dtype, string device, bool fuse, int nodes) =>
        Assert.Equal(nodes, Build(dtype, device, fuse).Graph.Node.Count);

    [Theory]
    [InlineData("fp16", "cuda")]
    [InlineData("fp32", "cpu")]
    public void Fusion_RemovesNodesFromEveryStep_AndKeepsTheResidualStreamAsTheSkipNormsFourthOutput(string dtype, string device)
    {
        var before = Build(dtype, device, fuse: false);
        var after = Build(dtype, device, fuse: true);
        Assert.True(after.Graph.Node.Count < before.Graph.Node.Count, $"{after.Graph.Node.Count} nodes after, {before.Graph.Node.Count} before");

        // Each fused node reads (residual, delta, gamma) and hands its sum on as output 3 under the residual's old name.
        var fused = after.Graph.Node.Where(n => n.OpType == "SkipSimplifiedLayerNormalization").ToList();
        Assert.Equal(6, fused.Count);
        Assert.All(fused, n =>
        {
            Assert.Equal("com.microsoft", n.Domain);
            Assert.Equal(3, n.Input.Count);
            Assert.EndsWith("layernorm.weight", n.Input[2].Replace("model.norm.weight", "final_layernorm.weight", StringComparison.Ordinal), StringComparison.Ordinal);
            Assert.Equal(4, n.Output.Count);
            Assert.Equal(["", ""], n.Output.Skip(1).Take(2));
            Assert.EndsWith("residual", n.Output[3], StringComparison.Ordinal);
            Assert.Equal(1e-6f, n.Attribute.Single(a => a.Name == "epsilon").F);
        });
        Assert.Equal("final_norm", fused[^1].Name);
        Assert.Equal("l2_mlp_residual", fused[^1].Output[3]);
        Assert.Contains(after.OpsetImport, o => o.Domain == "com.microsoft");
    }

    [Theory]
    [InlineData(null, true)]
    [InlineData("on", true)]
    [InlineData("off", false)]
    public void FuseFlag_IsOnByDefault(string? value, bool fuse)
    {
        Assert.True(BuilderCommand.TryParse(["--checkpoint", "c", "--out", "o", .. value is null ? Array.Empty<string>() : ["--fuse", value]], out var options, out _));
        Assert.Equal(fuse, options!.FuseKernels);
    }

    [Theory]
    [InlineData("--fuse")]
    [InlineData("--attention-metadata")]
    public void OnOffFlags_RefuseOtherValues_NamingTheFlag(string flag)
    {
        Assert.False(BuilderCommand.TryParse(["--checkpoint", "c", "--out", "o", flag, "maybe"], out _, out var problem));
        Assert.Equal($"{flag} must be on or off, not 'maybe'", problem);
    }

    /// <summary>Builds llama-gqa with the given dtype, device and fusion; once per combination.</summary>
    internal static ModelProto Build(string dtype, string device, bool fuse)
    {
        var folder = BuiltModels.TempDirectory($"kernels-llama-gqa-{dtype}-{device}-{(fuse ? "fused" : "unfused")}");
        var path = Path.Combine(folder, ModelBuilder.GraphFileName);
        if (!File.Exists(path))
        {
            ModelBuilder.Build(new BuildOptions { CheckpointDirectory = BuiltModels.Fixture("llama-gqa"), OutputDirectory = folder, DType = dtype, Device = device, FuseKernels = fuse });
        }

        using var stream = File.OpenRead(path);
        return ModelProto.Parser.ParseFrom(stream);
    }

    /// <summary>Op type -> count over the nodes of decoder layer <paramref name="layer"/>.</summary>
    internal static SortedDictionary<string, int> LayerOps(ModelProto model, int layer)
    {
        var ops = new SortedDictionary<string, int>(StringComparer.Ordinal) { ["Gemm"] = 0 };
        foreach (var node in model.Graph.Node.Where(n => n.Name.StartsWith($"l{layer}_", StringComparison.Ordinal)))
        {
            ops[node.OpType] = ops.GetValueOrDefault(node.OpType) + 1;
        }

        return ops;
    }

    private static string Describe(SortedDictionary<string, int> ops) => string.Join(' ', ops.Select(p => $"{p.Key}:{p.Value}"));
}
