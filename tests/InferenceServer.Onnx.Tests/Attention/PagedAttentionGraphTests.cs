// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Onnx.Proto;
using InferenceServer.Onnx.Attention;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Tests.Attention;

/// <summary>
/// The <c>cuda:N</c> backend's one-node attention graph: PagedAttention called as the fused paged graph calls it (the
/// same slots, no rotary, pools aliased in and out), the MoH multiply, and a graph ONNX Runtime's CPU build accepts up to
/// the missing CUDA-only kernel (its schema and type checks pass).
/// </summary>
public sealed class PagedAttentionGraphTests
{
    [Theory]
    [InlineData(false, TensorElementType.Float16)]
    [InlineData(true, TensorElementType.BFloat16)]
    public void Create_PagedAttentionInTheFusedGraphsSlots(bool headMasked, TensorElementType type)
    {
        var spec = new AttentionLayerSpec(3, 8, 2, 64, 64, 0.125f, headMasked);
        var model = ModelProto.Parser.ParseFrom(PagedAttentionGraph.Create(spec, type));
        var node = Assert.Single(model.Graph.Node, n => n.OpType == "PagedAttention");
        Assert.Equal("com.microsoft", node.Domain);
        Assert.Equal(17, node.Input.Count);
        Assert.Equal(PagedAttentionGraph.AttentionMetadata, node.Input[16]);
        Assert.Equal(string.Empty, node.Input[8]);
        Assert.Equal([PagedAttentionGraph.KeyCacheOut, PagedAttentionGraph.ValueCacheOut], node.Output.Skip(1));
        Assert.Equal(0, node.Attribute.Single(a => a.Name == "do_rotary").I);
        Assert.Equal(8, node.Attribute.Single(a => a.Name == "num_heads").I);
        Assert.Equal(2, node.Attribute.Single(a => a.Name == "kv_num_heads").I);
        Assert.Equal(0.125f, node.Attribute.Single(a => a.Name == "scale").F);
        var elementType = type == TensorElementType.Float16 ? (int)TensorProto.Types.DataType.Float16 : (int)TensorProto.Types.DataType.Bfloat16;
        Assert.Equal(elementType, model.Graph.Input.Single(i => i.Name == PagedAttentionGraph.Query).Type.TensorType.ElemType);
        Assert.Equal(headMasked, model.Graph.Input.Any(i => i.Name == PagedAttentionGraph.HeadMask));
        Assert.Equal(headMasked, model.Graph.Node.Any(n => n.OpType == "Mul"));
        Assert.Contains(model.Graph.Node, n => n.Output.Contains(PagedAttentionGraph.Output));
        Assert.True(model.IrVersion <= 13, "ONNX Runtime 1.31 loads IR 13 at most");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Create_GraphPassesOnnxRuntimeChecksUpToTheCudaKernel(bool headMasked)
    {
        var spec = new AttentionLayerSpec(0, 4, 2, 16, 16, 0.25f, headMasked);
        AssertFailsOnlyAtTheCudaKernel(PagedAttentionGraph.Create(spec, TensorElementType.Float16));
    }

    [Theory]
    [InlineData(TensorElementType.Float16)]
    [InlineData(TensorElementType.BFloat16)]
    public void CreateLatent_AbsorbedMlaAsPagedAttentionsLatentLayout(TensorElementType type)
    {
        // DeepSeek-V2-Lite's attention: 16 heads, kv_lora_rank 512 + rope 64.
        var spec = new AttentionLayerSpec(1, 16, 1, 576, 512, 0.1352f, HeadMasked: false, ValueIsKeyPrefix: true);
        var model = ModelProto.Parser.ParseFrom(PagedAttentionGraph.Create(spec, type));
        var node = Assert.Single(model.Graph.Node);
        Assert.Equal("PagedAttention", node.OpType);
        Assert.Equal(17, node.Input.Count);
        Assert.Equal([PagedAttentionGraph.Query, PagedAttentionGraph.Key, string.Empty, PagedAttentionGraph.KeyCache, string.Empty], node.Input.Take(5));
        Assert.Equal(PagedAttentionGraph.AttentionMetadata, node.Input[16]);
        Assert.Equal([PagedAttentionGraph.Output, PagedAttentionGraph.KeyCacheOut], node.Output);
        Assert.Equal("LATENT", node.Attribute.Single(a => a.Name == "kv_cache_layout").S.ToStringUtf8());
        Assert.Equal(512, node.Attribute.Single(a => a.Name == "v_head_size").I);
        Assert.Equal(1, node.Attribute.Single(a => a.Name == "kv_num_heads").I);
        Assert.Equal(0.1352f, node.Attribute.Single(a => a.Name == "scale").F);
        Assert.DoesNotContain(model.Graph.Input, i => i.Name is PagedAttentionGraph.Value or PagedAttentionGraph.ValueCache);
        Assert.Equal(16 * 512, model.Graph.Output.Single(o => o.Name == PagedAttentionGraph.Output).Type.TensorType.Shape.Dim[1].DimValue);
        Assert.Equal(576, model.Graph.Input.Single(i => i.Name == PagedAttentionGraph.KeyCache).Type.TensorType.Shape.Dim[3].DimValue);
        Assert.Throws<ArgumentException>(() => PagedAttentionGraph.CreateLatent(spec with { ValueIsKeyPrefix = false }, type));
    }

    [Fact]
    public void CreateLatent_GraphPassesOnnxRuntime131sSchemaUpToTheCudaKernel()
    {
        // ONNX Runtime 1.31's PagedAttention schema has the LATENT layout (kv_cache_layout, v_head_size); a node it
        // rejects fails with a schema error before kernel assignment.
        var spec = new AttentionLayerSpec(0, 4, 1, 40, 32, 0.25f, HeadMasked: false, ValueIsKeyPrefix: true);
        AssertFailsOnlyAtTheCudaKernel(PagedAttentionGraph.Create(spec, TensorElementType.Float16));
    }

    /// <summary>
    /// The model loads and passes the schema and shape checks; on the CPU it then fails at kernel assignment: no CPU
    /// kernel, or (the CPU build casting fp16 nodes it cannot run to fp32) an fp32 query PagedAttention does not take.
    /// </summary>
    private static void AssertFailsOnlyAtTheCudaKernel(byte[] model)
    {
        using var options = new SessionOptions();
        var error = Assert.ThrowsAny<OnnxRuntimeException>(() => new InferenceSession(model, options).Dispose());
        Assert.Contains("PagedAttention", error.Message, StringComparison.Ordinal);
        Assert.True(
            error.Message.Contains("InsertedPrecisionFreeCast", StringComparison.Ordinal) || error.Message.Contains("implementation", StringComparison.OrdinalIgnoreCase),
            error.Message);
    }
}
