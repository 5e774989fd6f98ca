// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Checkpoint;

namespace InferenceServer.Builder.Tests.Checkpoint;

public sealed class DecoderConfigTests
{
    private const string Sizes = "\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":128,\"vocab_size\":100";

    [Fact]
    public void RopeThetaAndRopeScaling_ParseLikeRopeParameters()
    {
        var older = DecoderConfig.Parse(
            "{\"model_type\":\"llama\"," + Sizes + ",\"rope_theta\":500000.0,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}}",
            "old");
        var newer = DecoderConfig.Parse(
            "{\"model_type\":\"llama\"," + Sizes + ",\"rope_parameters\":{\"rope_type\":\"llama3\",\"rope_theta\":500000.0,\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}}",
            "new");
        Assert.Equal(older.Rope, newer.Rope);
        Assert.Equal("llama3", newer.Rope.Type);
        Assert.Equal(500000.0, newer.Rope.Theta);
        Assert.Equal(8192, newer.Rope.OriginalMaxPositionEmbeddings);
    }

    [Fact]
    public void Defaults_HeadDimFromHiddenSize_UniformLayers()
    {
        var config = DecoderConfig.Parse("{\"model_type\":\"mistral\"," + Sizes + ",\"tie_word_embeddings\":true,\"eos_token_id\":[2,7]}", "c");
        Assert.Equal(16, config.HeadDim);
        Assert.Equal("default", config.Rope.Type);
        Assert.Equal(10000.0, config.Rope.Theta);
        Assert.True(config.TieWordEmbeddings);
        Assert.Equal([2, 7], config.EosTokenIds);
        Assert.All(config.Layers, l => Assert.Equal(new LayerConfig(true, 4, 2, true, 128), l));
        Assert.Null(config.Moh);
    }

    [Fact]
    public void BlockConfigs_GivePerLayerShapes()
    {
        var config = DecoderConfig.Parse(File.ReadAllText(Path.Combine(BuiltModels.Fixture("llama-pruned"), "config.json")), "pruned");
        Assert.Equal(
            [new LayerConfig(true, 2, 1, true, 96), new LayerConfig(false, 0, 0, true, 128), new LayerConfig(true, 4, 2, false, 0)],
            config.Layers);
    }

    [Theory]
    [InlineData("{\"model_type\":\"gpt2\"," + Sizes + "}", "model_type 'gpt2' is not supported")]
    [InlineData("{\"model_type\":\"llama\"," + Sizes + ",\"hidden_act\":\"gelu\"}", "hidden_act 'gelu'")]
    [InlineData("{\"model_type\":\"llama\"," + Sizes + ",\"rope_scaling\":{\"rope_type\":\"dynamic\",\"factor\":2.0}}", "rope_type 'dynamic'")]
    [InlineData("{\"model_type\":\"llama\",\"hidden_size\":64}", "num_attention_heads")]
    [InlineData("{\"model_type\":\"llama\"," + Sizes + ",\"block_configs\":[{\"attention\":{\"no_op\":true},\"ffn\":{\"no_op\":true}}]}", "one entry per layer (2)")]
    [InlineData("{\"model_type\":\"llama\"," + Sizes + ",\"moh\":{\"num_shared_heads\":3,\"num_routed_active_heads\":1}}", "at least 2 routed heads")]
    [InlineData("{\"model_type\":\"llama\"," + Sizes + ",\"moh\":{\"num_shared_heads\":1,\"num_routed_active_heads\":1,\"router\":\"learned\"}}", "moh.router 'learned'")]
    [InlineData("{\"model_type\":\"qwen2\"," + Sizes + ",\"use_sliding_window\":true}", "use_sliding_window")]
    [InlineData("{\"model_type\":\"llama\"", "not valid JSON")]
    public void UnsupportedOrMalformed_ThrowsNamingTheSetting(string json, string expected)
    {
        var ex = Assert.Throws<ModelBuildException>(() => DecoderConfig.Parse(json, "config.json"));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.StartsWith("config.json", ex.Message, StringComparison.Ordinal);
    }
}
