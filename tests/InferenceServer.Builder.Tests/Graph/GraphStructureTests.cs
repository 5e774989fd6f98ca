// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Onnx.Proto;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>What graph tools rely on: one fused attention node per attention layer, weights outside the protobuf.</summary>
public sealed class GraphStructureTests
{
    [Theory]
    [InlineData("llama-gqa", 3)]
    [InlineData("llama-pruned", 2)]
    [InlineData("deepseek-v3-mla", 3)]
    public void OneAttentionNodePerAttentionLayer_WritingEachLayersPresent(string fixture, int attentionLayers)
    {
        var model = Load(fixture);
        var attention = model.Graph.Node.Where(n => n.OpType == "Attention").ToList();
        Assert.Equal(attentionLayers, attention.Count);
        for (var i = 0; i < attention.Count; i++)
        {
            Assert.Equal(string.Empty, attention[i].Domain);
            Assert.Equal(0, attention[i].Attribute.Single(a => a.Name == "is_causal").I);
            if (fixture == "deepseek-v3-mla")
            {
                // One shared KV head: keys [latent, rope key], values the cached latent itself.
                Assert.Equal(1, attention[i].Attribute.Single(a => a.Name == "kv_num_heads").I);
                Assert.Equal($"past_key_values.{i}.key", attention[i].Input[5]);
                Assert.Equal($"present.{i}.key", attention[i].Output[2]);
                Assert.Contains(model.Graph.Node, n => n.Output.Contains($"present.{i}.value") && n.Input[0] == attention[i].Output[1]);
            }
            else
            {
                Assert.Equal([$"present.{i}.key", $"present.{i}.value"], attention[i].Output.Skip(1));
                Assert.Equal($"past_key_values.{i}.key", attention[i].Input[4]);
                Assert.Equal($"past_key_values.{i}.value", attention[i].Input[5]);
            }
        }

        Assert.Contains(model.OpsetImport, o => o.Domain == string.Empty && o.Version == 23);
        Assert.Equal(11, model.IrVersion);
    }

    [Fact]
    public void Weights_AreExternalData_WithinTheDataFile()
    {
        var folder = BuiltModels.Get("qwen2");
        var model = Load("qwen2");
        var dataLength = new FileInfo(Path.Combine(folder, "model.onnx.data")).Length;
        var external = model.Graph.Initializer.Where(t => t.DataLocation == TensorProto.Types.DataLocation.External).ToList();
        Assert.Contains(external, t => t.Name == "model.layers.0.self_attn.qkv_packed.bias");
        Assert.Contains(external, t => t.Name == "lm_head.weight");
        foreach (var tensor in external)
        {
            var entries = tensor.ExternalData.ToDictionary(e => e.Key, e => e.Value);
            Assert.Equal("model.onnx.data", entries["location"]);
            Assert.True(long.Parse(entries["offset"], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(entries["length"], System.Globalization.CultureInfo.InvariantCulture) <= dataLength);
        }

        Assert.All(model.Graph.Initializer.Where(t => t.DataLocation != TensorProto.Types.DataLocation.External), t => Assert.True(t.RawData.Length <= 64, t.Name));
        Assert.True(new FileInfo(Path.Combine(folder, "model.onnx")).Length < 64 * 1024);
    }

    private static ModelProto Load(string fixture)
    {
        using var stream = File.OpenRead(Path.Combine(BuiltModels.Get(fixture), "model.onnx"));
        return ModelProto.Parser.ParseFrom(stream);
    }
}
