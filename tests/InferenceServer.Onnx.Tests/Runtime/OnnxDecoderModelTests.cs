using System.Text.Json;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

public sealed class OnnxDecoderModelTests
{
    [Fact]
    public void MlaGraph_KvLayoutIsReadFromTheGraph()
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(FixturePaths.Fixture("deepseek-v3-mla")));
        Assert.Equal(3, model.Spec.KvLayers.Count);
        Assert.All(model.Spec.KvLayers, layer => Assert.Equal((1, 32, 1, 8), (layer.KeyHeads, layer.KeyWidth, layer.ValueHeads, layer.ValueWidth)));
        Assert.Equal(3 * (32 + 8) * 4, model.Spec.KvBytesPerToken);
        Assert.Equal(1024, model.Spec.VocabularySize);
    }

    [Fact]
    public void Device_CpuIsCpu_AndMalformedDevicesAreRefused()
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(FixturePaths.Fixture("llama-gqa")), new OnnxSessionOptions { Device = "cpu" });
        Assert.Equal(ComputeDevice.Cpu, model.Device);
        Assert.Null(model.DeviceNote);
        foreach (var bad in (string[])["gpu", "cuda:", "cuda:-1", "cuda:x"])
        {
            var ex = Assert.Throws<ExecutionProviderException>(() => OnnxDecoderModel.Open(ModelPackage.Load(FixturePaths.Fixture("llama-gqa")), new OnnxSessionOptions { Device = bad }));
            Assert.Contains("--device", ex.Message);
        }
    }

    [Fact]
    public void Device_Auto_RunsWhereTheProviderLoads_AndSaysWhyWhenItFallsBack()
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(FixturePaths.Fixture("llama-gqa")), new OnnxSessionOptions { Device = "auto" });
        if (!model.Device.IsCuda)
        {
            Assert.Contains("CUDA", model.DeviceNote);
        }
        else
        {
            Assert.Equal("cuda:0", model.Device.ToString());
        }
    }

    [Fact]
    public void GqaGraph_KvLayout()
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(FixturePaths.Fixture("llama-gqa")));
        Assert.All(model.Spec.KvLayers, layer => Assert.Equal((2, 16, 2, 16), (layer.KeyHeads, layer.KeyWidth, layer.ValueHeads, layer.ValueWidth)));
    }

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    [InlineData("deepseek-v3-mla")]
    public void FirstStepLogits_MatchTransformers(string fixture)
    {
        var folder = FixturePaths.Fixture(fixture);
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(folder));
        using var runner = new DenseKvRunner(model, 64, 16);
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "reference.json")));
        var batch = new ForwardBatch();
        var cases = document.RootElement.GetProperty("cases").EnumerateArray().ToList();
        var block = 0;
        foreach (var item in cases)
        {
            var prompt = item.GetProperty("prompt").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var blocks = Enumerable.Range(block, (prompt.Length + 15) / 16).ToArray();
            block += blocks.Length;
            batch.AddRow(prompt, 0, blocks, wantLogits: true);
        }

        // All cases in one padded batch: each row's logits equal the single-sequence reference.
        var logits = new float[cases.Count * model.Spec.VocabularySize];
        runner.Forward(batch, logits);
        for (var r = 0; r < cases.Count; r++)
        {
            var expected = cases[r].GetProperty("first_step_logits").EnumerateArray().Select(e => e.GetSingle()).ToArray();
            LogitAssert.Close(expected, logits.AsSpan(r * model.Spec.VocabularySize, model.Spec.VocabularySize), $"row {r}");
        }
    }
}
