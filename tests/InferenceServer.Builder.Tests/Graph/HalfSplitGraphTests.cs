// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using InferenceServer.Builder.Onnx.Proto;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using DataType = InferenceServer.Builder.Onnx.Proto.TensorProto.Types.DataType;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// The fp16/bf16 split form (<c>--dtype fp16|bf16 --split</c>, ADR 0005) that the CUDA split runner serves: the same
/// segments, inputs and outputs as the fp32 form, with hidden, q, k, v, attention and the RoPE rows in the model's dtype,
/// logits fp32 (as the paged graph), the MoH mask fp32; fp16 segments load in ONNX Runtime (on the CPU here).
/// </summary>
public sealed class HalfSplitGraphTests
{
    [Theory]
    [InlineData("llama-gqa", "fp16")]
    [InlineData("llama-gqa", "bf16")]
    [InlineData("qwen2", "fp16")]
    [InlineData("llama-pruned", "bf16")]
    [InlineData("llama-moh", "fp16")]
    public void Build_HalfSplit_SegmentsCarryTheModelDType(string fixture, string dtype)
    {
        var folder = BuiltModels.Get(fixture, dtype, "cuda", split: true);
        var t = dtype == "fp16" ? DataType.Float16 : DataType.Bfloat16;
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, ModelBuilder.GenAiConfigFileName)));
        var split = document.RootElement.GetProperty("inference_server").GetProperty("split");
        var calls = split.GetProperty("attention").GetArrayLength();
        Assert.Equal(calls + 1, split.GetProperty("segments").GetArrayLength());
        for (var s = 0; s <= calls; s++)
        {
            var graph = Load(Path.Combine(folder, ModelBuilder.SegmentFileName(s))).Graph;
            var inputs = graph.Input.ToDictionary(i => i.Name, i => (DataType)i.Type.TensorType.ElemType);
            var outputs = graph.Output.ToDictionary(o => o.Name, o => (DataType)o.Type.TensorType.ElemType);
            if (s == 0)
            {
                Assert.Equal(DataType.Int64, inputs["input_ids"]);
                Assert.Equal(t, outputs["rope_cos"]);
            }
            else
            {
                Assert.Equal(t, inputs["hidden"]);
                Assert.Equal(t, inputs["attention"]);
            }

            if (s == calls)
            {
                Assert.Equal(DataType.Float, outputs["logits"]);
                continue;
            }

            foreach (var name in (string[])["hidden_out", "q", "k", "v"])
            {
                Assert.Equal(t, outputs[name]);
            }

            if (fixture == "llama-moh")
            {
                Assert.Equal(DataType.Float, outputs["head_mask"]);
            }

            // RMSNorm with fp32 statistics, as the paged graph: x^2 would overflow fp16.
            Assert.Contains(graph.Node, n => n.OpType == "SimplifiedLayerNormalization");
            Assert.DoesNotContain(graph.Node, n => n.OpType == "Pow");
        }
    }

    [Fact]
    public void Build_Fp16Split_SegmentsLoadInOnnxRuntime()
    {
        var folder = BuiltModels.Get("llama-gqa", "fp16", "cuda", split: true);
        using var options = new SessionOptions();
        for (var s = 0; File.Exists(Path.Combine(folder, ModelBuilder.SegmentFileName(s))); s++)
        {
            using var session = new InferenceSession(Path.Combine(folder, ModelBuilder.SegmentFileName(s)), options);
            var name = s == 0 ? "input_ids" : "hidden";
            Assert.Equal(s == 0 ? TensorElementType.Int64 : TensorElementType.Float16, session.InputMetadata[name].ElementDataType);
        }
    }

    [Fact]
    public void Open_HalfSplitOnTheCpu_SaysToServeOnCuda()
    {
        var package = ModelPackage.Load(BuiltModels.Get("llama-gqa", "fp16", "cuda", split: true));
        var error = Assert.Throws<ModelPackageException>(() => DecoderModels.Open(package, new OnnxSessionOptions { Device = "cpu", AttentionDevices = ["cpu"] }));
        Assert.Contains("--device cuda", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_HalfSplitOfMla_FailsSayingFp32()
    {
        var output = BuiltModels.TempDirectory("mla-fp16-split");
        var error = Assert.Throws<ModelBuildException>(() => ModelBuilder.Build(new BuildOptions { CheckpointDirectory = BuiltModels.Fixture("deepseek-v3-mla"), OutputDirectory = output, DType = "fp16", Device = "cuda", Split = true }));
        Assert.Contains("fp32", error.Message, StringComparison.Ordinal);
    }

    private static ModelProto Load(string path)
    {
        using var stream = File.OpenRead(path);
        return ModelProto.Parser.ParseFrom(stream);
    }
}
