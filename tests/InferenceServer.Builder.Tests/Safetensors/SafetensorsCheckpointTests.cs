// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;
using System.Text.Json;
using InferenceServer.Builder.Safetensors;

namespace InferenceServer.Builder.Tests.Safetensors;

public sealed class SafetensorsCheckpointTests
{
    [Fact]
    public void ShardedCheckpoint_BuildsTheSameWeightsAsTheSingleFile()
    {
        // Split llama-gqa's weights over two shards with an index; the built weights are byte for byte the same.
        var fixture = BuiltModels.Fixture("llama-gqa");
        var sharded = BuiltModels.TempDirectory("sharded-llama-gqa");
        File.Copy(Path.Combine(fixture, "config.json"), Path.Combine(sharded, "config.json"), overwrite: true);
        var shards = new[] { new List<(string, string, long[], byte[])>(), new List<(string, string, long[], byte[])>() };
        var weightMap = new Dictionary<string, string>();
        using (var file = SafetensorsFile.Open(Path.Combine(fixture, "model.safetensors")))
        {
            var index = 0;
            foreach (var info in file.Tensors.Values.OrderBy(t => t.Name, StringComparer.Ordinal))
            {
                var shard = index++ % 2;
                shards[shard].Add((info.Name, "F32", info.Shape, MemoryMarshal.AsBytes(file.ReadFloat32(info).AsSpan()).ToArray()));
                weightMap[info.Name] = $"model-0000{shard + 1}-of-00002.safetensors";
            }
        }

        SafetensorsWriter.Write(Path.Combine(sharded, "model-00001-of-00002.safetensors"), shards[0]);
        SafetensorsWriter.Write(Path.Combine(sharded, "model-00002-of-00002.safetensors"), shards[1]);
        File.WriteAllText(Path.Combine(sharded, "model.safetensors.index.json"), JsonSerializer.Serialize(new { metadata = new { }, weight_map = weightMap }));

        var output = BuiltModels.TempDirectory("sharded-llama-gqa-out");
        ModelBuilder.Build(new BuildOptions { CheckpointDirectory = sharded, OutputDirectory = output });
        var expected = File.ReadAllBytes(Path.Combine(BuiltModels.Get("llama-gqa"), ModelBuilder.DataFileName));
        Assert.Equal(expected, File.ReadAllBytes(Path.Combine(output, ModelBuilder.DataFileName)));
    }

    [Fact]
    public void Index_NamingAMissingShard_Throws()
    {
        var folder = BuiltModels.TempDirectory("missing-shard");
        File.WriteAllText(Path.Combine(folder, "model.safetensors.index.json"), "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\"}}");
        var ex = Assert.Throws<ModelBuildException>(() => SafetensorsCheckpoint.Open(folder).Dispose());
        Assert.Contains("model-00001-of-00002.safetensors is listed but missing", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TensorInTwoFiles_Throws()
    {
        var folder = BuiltModels.TempDirectory("duplicate-tensor");
        SafetensorsWriter.Write(Path.Combine(folder, "a.safetensors"), [("w", "F32", [1], new byte[4])]);
        SafetensorsWriter.Write(Path.Combine(folder, "b.safetensors"), [("w", "F32", [1], new byte[4])]);
        var ex = Assert.Throws<ModelBuildException>(() => SafetensorsCheckpoint.Open(folder).Dispose());
        Assert.Contains("tensor w is in both", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadFloat32_ShapeOtherThanTheConfigImplies_Throws()
    {
        using var checkpoint = SafetensorsCheckpoint.Open(BuiltModels.Fixture("llama-gqa"));
        var ex = Assert.Throws<ModelBuildException>(() => checkpoint.ReadFloat32("model.norm.weight", 32));
        Assert.Contains("has shape [64]; the config implies [32]", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ModelBuildException>(() => checkpoint.ReadFloat32("model.no_such.weight", 1));
    }
}
