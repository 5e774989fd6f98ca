// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;
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
                Assert.Equal(DataType.Int64, outputs["next_tokens"]);
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

            // RMSNorm with fp32 statistics, as the paged graph: x^2 would overflow fp16. With the fused build (ADR 0007) a
            // residual add and the norm after it are one SkipSimplifiedLayerNormalization, which keeps fp32 statistics too.
            Assert.Contains(graph.Node, n => n.OpType is "SimplifiedLayerNormalization" or "SkipSimplifiedLayerNormalization");
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

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    [InlineData("llama-pruned")]
    [InlineData("llama-moh")]
    [InlineData("deepseek-v3-dense-mla")]
    [InlineData("deepseek-v3-mla")]
    public void Fp16Segments_PromptThroughEverySegment_LogitsWithinFp16ToleranceOfTransformers(string fixture)
    {
        // The fp16 segments run by ONNX Runtime's CPU build (which casts what it has no fp16 kernel for) with a plain
        // causal attention between them: the CUDA split's graphs, checked for meaning before any GPU runs them.
        var folder = BuiltModels.Get(fixture, "fp16", "cuda", split: true);
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, ModelBuilder.GenAiConfigFileName)));
        var calls = document.RootElement.GetProperty("inference_server").GetProperty("split").GetProperty("attention").EnumerateArray().ToArray();
        var (prompt, _, expected) = BuiltModels.References(fixture).MaxBy(c => c.Prompt.Length);
        var tokens = prompt.Length;
        using var options = new SessionOptions();
        using var runOptions = new RunOptions();
        var hidden = Array.Empty<Half>();
        var attention = Array.Empty<Half>();
        Half[] ropeCos = [], ropeSin = [];
        float[] logits = [];
        for (var s = 0; s <= calls.Length; s++)
        {
            using var session = new InferenceSession(Path.Combine(folder, ModelBuilder.SegmentFileName(s)), options);
            var inputs = new Dictionary<string, OrtValue>(StringComparer.Ordinal);
            try
            {
                if (s == 0)
                {
                    inputs["input_ids"] = OrtValue.CreateTensorValueFromMemory(prompt.Select(t => (long)t).ToArray(), [tokens]);
                    inputs["position_ids"] = OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, tokens).Select(t => (long)t).ToArray(), [tokens]);
                }
                else
                {
                    inputs["hidden"] = Half16(hidden, tokens);
                    inputs["attention"] = Half16(attention, tokens);
                    if (s < calls.Length)
                    {
                        inputs["rope_cos"] = Half16(ropeCos, tokens);
                        inputs["rope_sin"] = Half16(ropeSin, tokens);
                    }
                    else
                    {
                        inputs["logits_indices"] = OrtValue.CreateTensorValueFromMemory(new long[] { tokens - 1 }, [1]);
                    }
                }

                var names = session.OutputMetadata.Keys.ToArray();
                using var outputs = session.Run(runOptions, [.. inputs.Keys], [.. inputs.Values], names);
                var result = names.Zip(outputs).ToDictionary(p => p.First, p => p.Second, StringComparer.Ordinal);
                if (s == calls.Length)
                {
                    logits = result["logits"].GetTensorDataAsSpan<float>().ToArray();
                    // The argmax a GPU runner reads instead of the logits: the first maximum, as greedy decoding picks.
                    Assert.Equal([LogitMath.ArgMax(logits)], result["next_tokens"].GetTensorDataAsSpan<long>().ToArray().Select(t => (int)t));
                    break;
                }

                hidden = Read(result["hidden_out"]);
                if (s == 0)
                {
                    ropeCos = Read(result["rope_cos"]);
                    ropeSin = Read(result["rope_sin"]);
                }

                var mask = result.TryGetValue("head_mask", out var headMask) ? headMask.GetTensorDataAsSpan<float>().ToArray() : null;
                attention = CausalAttention(calls[s], tokens, Read(result["q"]), Read(result["k"]), Read(result["v"]), mask);
            }
            finally
            {
                foreach (var value in inputs.Values)
                {
                    value.Dispose();
                }
            }
        }

        var worst = expected.Zip(logits, (e, l) => Math.Abs(e - l)).Max();
        Assert.True(worst <= 0.02f, $"max |logit - reference| {worst} exceeds fp16's 0.02");
    }

    [Fact]
    public void Open_HalfSplitOnTheCpu_SaysToServeOnCuda()
    {
        var package = ModelPackage.Load(BuiltModels.Get("llama-gqa", "fp16", "cuda", split: true));
        var error = Assert.Throws<ModelPackageException>(() => DecoderModels.Open(package, new OnnxSessionOptions { Device = "cpu", AttentionDevices = ["cpu"] }));
        Assert.Contains("--device cuda", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cuda:0", "cuda:0")]
    [InlineData("cuda:1", "cpu", "cuda:0")]
    public void Open_TwoCudaAttentionDevices_SaysAtMostOne(params string[] devices)
    {
        // Checked before any device is looked for: the same answer with or without a GPU.
        var package = ModelPackage.Load(BuiltModels.Get("llama-gqa", "fp16", "cuda", split: true));
        var error = Assert.Throws<ExecutionProviderException>(() => DecoderModels.Open(package, new OnnxSessionOptions { Device = "cuda:0", AttentionDevices = devices }));
        Assert.Contains("at most one cuda:N", error.Message, StringComparison.Ordinal);
    }

    private static OrtValue Half16(Half[] data, int tokens) =>
        OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<Float16>(MemoryMarshal.Cast<Half, Float16>(data).ToArray()), [tokens, data.Length / tokens]);

    private static Half[] Read(OrtValue value) => MemoryMarshal.Cast<Float16, Half>(value.GetTensorDataAsSpan<Float16>()).ToArray();

    /// <summary>Plain causal attention over the prompt (no cache), in fp32 from fp16 q, k, v; masked MoH heads give 0.</summary>
    private static Half[] CausalAttention(JsonElement call, int tokens, Half[] q, Half[] k, Half[] v, float[]? mask)
    {
        var heads = call.GetProperty("query_heads").GetInt32();
        var kvHeads = call.GetProperty("kv_heads").GetInt32();
        var d = call.GetProperty("key_width").GetInt32();
        var dv = call.GetProperty("value_width").GetInt32();
        var scale = call.GetProperty("scale").GetDouble();
        var output = new Half[tokens * heads * dv];
        var scores = new double[tokens];
        for (var i = 0; i < tokens; i++)
        {
            for (var h = 0; h < heads; h++)
            {
                if (mask is not null && mask[(i * heads) + h] == 0)
                {
                    continue;
                }

                var g = h / (heads / kvHeads);
                var max = double.NegativeInfinity;
                for (var j = 0; j <= i; j++)
                {
                    double dot = 0;
                    for (var x = 0; x < d; x++)
                    {
                        dot += (double)q[(((i * heads) + h) * d) + x] * (double)k[(((j * kvHeads) + g) * d) + x];
                    }

                    scores[j] = dot * scale;
                    max = Math.Max(max, scores[j]);
                }

                double sum = 0;
                for (var j = 0; j <= i; j++)
                {
                    scores[j] = Math.Exp(scores[j] - max);
                    sum += scores[j];
                }

                for (var x = 0; x < dv; x++)
                {
                    double acc = 0;
                    for (var j = 0; j <= i; j++)
                    {
                        acc += scores[j] * (double)v[(((j * kvHeads) + g) * dv) + x];
                    }

                    output[(((i * heads) + h) * dv) + x] = (Half)(acc / sum);
                }
            }
        }

        return output;
    }

    private static ModelProto Load(string path)
    {
        using var stream = File.OpenRead(path);
        return ModelProto.Parser.ParseFrom(stream);
    }
}
