using System.Text.Json;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>How ONNX Runtime sessions are set up: spinning modes and the operator trace.</summary>
public sealed class SessionOptionsTests
{
    [Theory]
    [InlineData(OnnxSpinning.Step)]
    [InlineData(OnnxSpinning.Always)]
    public void EverySpinningMode_GivesTheLogitsOfTheDefault(OnnxSpinning spinning)
    {
        var expected = LastLogits(new OnnxSessionOptions { IntraOpThreads = 2 });
        var actual = LastLogits(new OnnxSessionOptions { Spinning = spinning, IntraOpThreads = 2 });
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void ProfilePrefix_WritesAnOperatorTraceWhenTheSessionCloses()
    {
        var directory = Directory.CreateTempSubdirectory("ort-trace-");
        try
        {
            var prefix = Path.Combine(directory.FullName, "trace");
            LastLogits(new OnnxSessionOptions { ProfilePrefix = prefix });
            var file = Assert.Single(directory.GetFiles("trace*.json"));
            using var trace = JsonDocument.Parse(File.ReadAllBytes(file.FullName));
            var events = trace.RootElement.EnumerateArray().ToList();
            Assert.Contains(events, static e => e.GetProperty("name").GetString() == "model_run");
            Assert.Contains(events, static e => e.GetProperty("cat").GetString() == "Node"
                && e.TryGetProperty("args", out var args) && args.TryGetProperty("op_name", out var op) && op.GetString() == "MatMul");
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static float[] LastLogits(OnnxSessionOptions options)
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(FixturePaths.Fixture("llama-gqa")), options);
        using var runner = new DenseKvRunner(model, 8, 16);
        var batch = new ForwardBatch();
        batch.AddRow([5, 17, 301, 42, 9], 0, [0], RowLogits.Last);
        var logits = new float[model.Spec.VocabularySize];
        runner.Forward(batch, logits);
        return logits;
    }
}
