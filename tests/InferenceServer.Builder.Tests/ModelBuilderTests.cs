// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Tests;

public sealed class ModelBuilderTests
{
    [Fact]
    public void OutputFolderIsTheCheckpoint_Throws()
    {
        var fixture = BuiltModels.Fixture("llama-gqa");
        var ex = Assert.Throws<ModelBuildException>(() => ModelBuilder.Build(new BuildOptions { CheckpointDirectory = fixture, OutputDirectory = fixture }));
        Assert.Contains("must differ from the checkpoint folder", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CheckpointWithoutConfig_Throws()
    {
        var folder = BuiltModels.TempDirectory("no-config");
        var ex = Assert.Throws<ModelBuildException>(() => ModelBuilder.Build(new BuildOptions { CheckpointDirectory = folder, OutputDirectory = folder + "-out" }));
        Assert.Contains("config.json", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FolderWithoutSafetensors_IsRefusedClearly()
    {
        // An exported model folder (config.json beside model.onnx) is no checkpoint to build from.
        var folder = BuiltModels.TempDirectory("onnx-only");
        File.Copy(Path.Combine(BuiltModels.Root, "models", "tiny-pycoder", "config.json"), Path.Combine(folder, "config.json"), overwrite: true);
        var ex = Assert.Throws<ModelBuildException>(() => ModelBuilder.Build(new BuildOptions { CheckpointDirectory = folder, OutputDirectory = BuiltModels.TempDirectory("pycoder-out") }));
        Assert.Contains("no model.safetensors", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MoeLayersWithoutExpertWeights_AreRefusedNamingTheTensor()
    {
        var folder = BuiltModels.TempDirectory("moe");
        var config = File.ReadAllText(Path.Combine(BuiltModels.Fixture("deepseek-v3-mla"), "config.json")).Replace("\"first_k_dense_replace\": 3", "\"first_k_dense_replace\": 1", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(folder, "config.json"), config);
        File.Copy(Path.Combine(BuiltModels.Fixture("deepseek-v3-mla"), "model.safetensors"), Path.Combine(folder, "model.safetensors"), overwrite: true);
        var ex = Assert.Throws<ModelBuildException>(() => ModelBuilder.Build(new BuildOptions { CheckpointDirectory = folder, OutputDirectory = folder + "-out" }));
        Assert.Contains("checkpoint has no tensor model.layers.1.mlp.gate.weight", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CancelledBuild_LeavesNoGraphAndNoStagingFolder()
    {
        var output = BuiltModels.TempDirectory("cancelled");
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => ModelBuilder.Build(new BuildOptions { CheckpointDirectory = BuiltModels.Fixture("llama-gqa"), OutputDirectory = output }, cancelled.Token));
        Assert.Empty(Directory.GetFileSystemEntries(output));
    }

    [Fact]
    public void Rebuild_ReplacesTheFolderContents()
    {
        var output = BuiltModels.TempDirectory("rebuild");
        var first = ModelBuilder.Build(new BuildOptions { CheckpointDirectory = BuiltModels.Fixture("llama-gqa"), OutputDirectory = output });
        var second = ModelBuilder.Build(new BuildOptions { CheckpointDirectory = BuiltModels.Fixture("qwen2"), OutputDirectory = output });
        Assert.Equal(Path.Combine(output, "model.onnx"), second.ModelPath);
        Assert.Equal("qwen2", second.Architecture);
        Assert.True(second.ParameterCount > first.ParameterCount);
        Assert.Equal(["config.json", "genai_config.json", "generation_config.json", "model.onnx", "model.onnx.data"], Directory.GetFileSystemEntries(output).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }
}
