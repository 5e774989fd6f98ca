// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Onnx.Proto;
using Microsoft.ML.OnnxRuntime;
using DataType = InferenceServer.Builder.Onnx.Proto.TensorProto.Types.DataType;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// <c>build --dtype int4 --device cuda</c>: the paged graph with fp16 activations, every layer projection a
/// <c>MatMulNBits</c> (block 32 or 128) with fp16 scales, embeddings and LM head fp16, the ADR 0007 fusions; and ONNX
/// Runtime parses and resolves it on the CPU up to the first PagedAttention, which runs on CUDA only (GpuTests run it).
/// </summary>
public sealed class Int4CudaGraphTests
{
    [Theory]
    [InlineData(32)]
    [InlineData(128)]
    public void Int4PagedGraph_HasFp16ActivationsAndMatMulNBits_WithFp16ScalesHeadAndEmbeddings(int blockSize)
    {
        var model = Build(blockSize);
        var initializers = model.Graph.Initializer.ToDictionary(i => i.Name);
        var nbits = model.Graph.Node.Where(n => n.OpType == "MatMulNBits").ToList();

        // 3 layers x (packed q|k|v, o, packed gate|up, down); no Gemm but the LM head.
        Assert.Equal(12, nbits.Count);
        Assert.Equal(["lm_head"], model.Graph.Node.Where(n => n.OpType == "Gemm").Select(n => n.Name));
        Assert.All(nbits, n =>
        {
            Assert.Equal("com.microsoft", n.Domain);
            var attributes = n.Attribute.ToDictionary(a => a.Name, a => a.I);
            Assert.Equal(4, attributes["bits"]);
            Assert.Equal(blockSize, attributes["block_size"]);
            Assert.Equal((int)DataType.Uint8, initializers[n.Input[1]].DataType);
            Assert.Equal((int)DataType.Float16, initializers[n.Input[2]].DataType);
        });
        Assert.Equal((int)DataType.Float16, initializers["model.embed_tokens.weight"].DataType);
        Assert.Equal((int)DataType.Float16, initializers["lm_head.weight"].DataType);
        Assert.Equal((int)DataType.Float16, model.Graph.Input.Single(i => i.Name == "key_cache.0").Type.TensorType.ElemType);
        Assert.Equal(6, model.Graph.Node.Count(n => n.OpType == "SkipSimplifiedLayerNormalization"));
        Assert.Equal(3, model.Graph.Node.Count(n => n.OpType == "PagedAttention"));
    }

    [Fact]
    public void Int4PagedGraph_LoadsInOnnxRuntime_UpToTheFirstPagedAttention()
    {
        Build(32);
        var path = Path.Combine(BuiltModels.TempDirectory("int4-cuda-32"), ModelBuilder.GraphFileName);
        using var options = new SessionOptions();
        var error = Assert.Throws<OnnxRuntimeException>(() => new InferenceSession(path, options).Dispose());

        // The model parsed, its external data read, and the nodes before layer 0's PagedAttention (the embedding, the
        // norm, the fp16 MatMulNBits of the packed q|k|v) resolved; it stops at PagedAttention, which has no CPU kernel
        // (the CPU provider's fp16 fallback hands it an fp32 input, which its schema refuses).
        Assert.Contains("(l0_attention)", error.Message, StringComparison.Ordinal);
        Assert.Contains("PagedAttention", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("MatMulNBits", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("SkipSimplifiedLayerNormalization", error.Message, StringComparison.Ordinal);
    }

    private static ModelProto Build(int blockSize)
    {
        var folder = BuiltModels.TempDirectory($"int4-cuda-{blockSize}");
        var path = Path.Combine(folder, ModelBuilder.GraphFileName);
        if (!File.Exists(path))
        {
            ModelBuilder.Build(new BuildOptions { CheckpointDirectory = BuiltModels.Fixture("llama-gqa"), OutputDirectory = folder, DType = "int4", Device = "cuda", Int4BlockSize = blockSize });
        }

        using var stream = File.OpenRead(path);
        return ModelProto.Parser.ParseFrom(stream);
    }
}
