// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json.Nodes;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// A split model takes its attention calls from config.json (<c>ModelSpec.AttentionLayers</c>) and only checks the build's
/// <c>genai_config.json</c> record against them.
/// </summary>
public sealed class SplitSpecTests
{
    [Theory]
    [InlineData("llama-gqa", new[] { 0, 1, 2 })]
    [InlineData("llama-pruned", new[] { 0, 2 })]
    [InlineData("deepseek-v3-mla", new[] { 0, 1, 2 })]
    public void SplitModel_CallsAreTheLayersWithAttention(string fixture, int[] layers)
    {
        using var model = (SplitDecoderModel)Open(BuiltModels.Get(fixture, split: true));
        Assert.Equal(layers, model.AttentionLayers);
        Assert.Equal(layers.Length + 1, model.SegmentCount);
    }

    [Theory]
    [InlineData("scale", 2.0)]
    [InlineData("kv_heads", 4.0)]
    public void Open_RecordThatDisagreesWithConfig_AsksForARebuild(string field, double factor)
    {
        var folder = Path.Combine(Path.GetTempPath(), "split-spec-" + Guid.NewGuid().ToString("N"));
        try
        {
            Directory.CreateDirectory(folder);
            foreach (var file in Directory.GetFiles(BuiltModels.Get("llama-gqa", split: true)))
            {
                File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
            }

            var path = Path.Combine(folder, ModelBuilder.GenAiConfigFileName);
            var root = JsonNode.Parse(File.ReadAllText(path))!;
            var call = root["inference_server"]!["split"]!["attention"]![1]!;
            call[field] = field == "scale" ? call[field]!.GetValue<double>() * factor : (int)(call[field]!.GetValue<int>() * factor);
            File.WriteAllText(path, root.ToJsonString());

            var ex = Assert.Throws<ModelPackageException>(() => Open(folder).Dispose());
            Assert.Contains("rebuild the model", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static IDecoderModel Open(string folder) =>
        DecoderModels.Open(ModelPackage.Load(folder), new OnnxSessionOptions { Device = "cpu", AttentionDevices = ["cpu"] });
}
