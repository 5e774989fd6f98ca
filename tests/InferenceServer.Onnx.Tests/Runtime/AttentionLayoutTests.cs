// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Attention;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>The per-layer attention spec (<see cref="ModelSpec.AttentionLayers"/>) read from each fixture's config.json.</summary>
public sealed class AttentionLayoutTests
{
    [Theory]
    [InlineData("llama-gqa", "gqa:4/2x16 gqa:4/2x16 gqa:4/2x16")]
    [InlineData("qwen2", "gqa:4/2x16 gqa:4/2x16 gqa:4/2x16")]
    [InlineData("llama-moh", "moh:4/2x16 moh:4/2x16 moh:4/2x16")]
    [InlineData("llama-pruned", "gqa:2/1x16 none:0/0x0 gqa:4/2x16")]
    [InlineData("deepseek-v3-mla", "mla:4/1x40 mla:4/1x40 mla:4/1x40")]
    public void Fixture_SpecMatchesItsConfig(string fixture, string expected)
    {
        var layers = AttentionLayout.FromConfig(Config(fixture));
        Assert.Equal(expected, string.Join(' ', layers.Select(static l => $"{l.Kind.ToString().ToLowerInvariant()}:{l.QueryHeads}/{l.KvHeads}x{l.KeyWidth}")));
        Assert.Equal([0, 1, 2], layers.Select(static l => l.Layer));
    }

    [Fact]
    public void Gqa_ScaleAndRope_FollowTheHeadWidth()
    {
        var layer = AttentionLayout.FromConfig(Config("llama-gqa"))[0];
        Assert.Equal((16, 16, 0.25f, 16, 0, 4), (layer.KeyWidth, layer.ValueWidth, layer.Scale, layer.RotaryWidth, layer.RotaryOffset, layer.ActiveHeads));
        Assert.False(layer.HeadMasked);
        Assert.False(layer.ValueIsKeyPrefix);
    }

    [Fact]
    public void Moh_ActiveHeads_AreSharedPlusRouted()
    {
        var layer = AttentionLayout.FromConfig(Config("llama-moh"))[1];
        Assert.True(layer.HeadMasked);
        Assert.Equal(2 + 1, layer.ActiveHeads);
    }

    [Fact]
    public void Mla_IsTheAbsorbedLatentForm()
    {
        var layer = AttentionLayout.FromConfig(Config("deepseek-v3-mla"))[2];
        // kv_lora_rank 32, qk_rope_head_dim 8, qk_nope_head_dim 16: key [latent 32, rope 8], value = the latent.
        Assert.Equal((1, 40, 32, 8, 32), (layer.KvHeads, layer.KeyWidth, layer.ValueWidth, layer.RotaryWidth, layer.RotaryOffset));
        Assert.True(layer.ValueIsKeyPrefix);
        Assert.Equal((float)(1 / Math.Sqrt(16 + 8)), layer.Scale);
    }

    [Fact]
    public void Mla_YarnMscale_SquaresIntoTheScale()
    {
        var config = ModelConfig.Parse("""
            {"model_type":"deepseek_v3","vocab_size":32,"num_hidden_layers":1,"hidden_size":64,"num_attention_heads":4,
             "kv_lora_rank":32,"qk_nope_head_dim":16,"qk_rope_head_dim":8,"v_head_dim":16,
             "rope_scaling":{"type":"yarn","factor":40,"mscale_all_dim":1.0}}
            """, "config.json");
        var mscale = (0.1 * Math.Log(40)) + 1;
        Assert.Equal((float)(mscale * mscale / Math.Sqrt(24)), AttentionLayout.FromConfig(config)[0].Scale);
    }

    [Fact]
    public void PartialRotaryFactor_NarrowsTheRotatedEntries()
    {
        var config = ModelConfig.Parse("""
            {"model_type":"phi3","vocab_size":32,"num_hidden_layers":2,"hidden_size":96,"num_attention_heads":4,"num_key_value_heads":1,"partial_rotary_factor":0.75}
            """, "config.json");
        var layer = AttentionLayout.FromConfig(config)[1];
        Assert.Equal((4, 1, 24, 18), (layer.QueryHeads, layer.KvHeads, layer.KeyWidth, layer.RotaryWidth));
    }

    [Fact]
    public void ConfigWithoutHeads_HasNoAttentionSpec()
        => Assert.Empty(AttentionLayout.FromConfig(ModelConfig.Parse("""{"model_type":"x","vocab_size":32,"num_hidden_layers":2}""", "config.json")));

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    [InlineData("deepseek-v3-mla")]
    public void OpenedModel_CarriesTheSpec_OneKvLayerPerAttentionLayer(string fixture)
    {
        var package = ModelPackage.Load(FixturePaths.Fixture(fixture));
        using var model = OnnxDecoderModel.Open(package, new OnnxSessionOptions { Device = "cpu" });
        Assert.Equal(AttentionLayout.FromConfig(package.Config), model.Spec.AttentionLayers);
        Assert.Equal(model.Spec.KvLayers.Count, model.Spec.AttentionLayers.Count(static l => l.HasAttention));
    }

    /// <summary>A fixture's config.json (the MoH and pruned fixtures are checkpoints only: no graph to load).</summary>
    private static ModelConfig Config(string fixture)
    {
        var path = Path.Combine(FixturePaths.Fixture(fixture), "config.json");
        return ModelConfig.Parse(File.ReadAllText(path), path);
    }
}
