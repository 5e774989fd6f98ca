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

    private const string MlaSizes = "\"kv_lora_rank\":32,\"qk_nope_head_dim\":16,\"qk_rope_head_dim\":8,\"v_head_dim\":16";

    [Fact]
    public void TransMlaLlamaMla_IsMlaOverTheDenseMlp_WithoutLatentNorms_ScaledByQueryPreAttnScalar()
    {
        // What TransMLA's converter writes for a Llama / Qwen2 / Mistral model (config_modifiers.modify_llama_config).
        var config = DecoderConfig.Parse(
            "{\"model_type\":\"llama_mla\",\"architectures\":[\"LlamaMLAForCausalLM\"]," + Sizes + "," + MlaSizes
            + ",\"q_lora_rank\":null,\"attention_bias\":true,\"mlp_bias\":false,\"first_k_dense_replace\":2,\"query_pre_attn_scalar\":64,\"rope_interleave\":false,\"head_dim\":8}",
            "c");
        Assert.Equal("llama_mla", config.ModelType);
        var mla = Assert.IsType<MlaConfig>(config.Mla);
        Assert.Null(mla.QLoraRank);
        Assert.False(mla.LatentNorms);
        Assert.False(mla.RopeInterleave);
        Assert.Equal(64, mla.QueryPreAttnScalar);
        Assert.Equal(1 / 8.0, mla.SoftmaxScale(config.Rope), 12);
        Assert.Equal(8, config.RotaryDim);
        Assert.Null(config.Moe);
        Assert.All(config.Layers, l => Assert.Equal(new LayerConfig(true, 4, 1, true, 128), l));
    }

    [Theory]
    [InlineData("\"model_type\":\"llama_mla\"", false, 128.0)]
    [InlineData("\"model_type\":\"llama_mla\",\"qk_latent_layernorm\":true", true, 128.0)]
    [InlineData("\"model_type\":\"deepseek_v3\"", true, null)]
    [InlineData("\"model_type\":\"deepseek_v3\",\"qk_latent_layernorm\":false,\"query_pre_attn_scalar\":16", false, 16.0)]
    public void MlaDefaults_LatentNormsAndScale_FollowTheModelType(string type, bool norms, double? scalar)
    {
        var config = DecoderConfig.Parse("{" + type + "," + Sizes + "," + MlaSizes + "}", "c");
        var mla = Assert.IsType<MlaConfig>(config.Mla);
        Assert.Equal(norms, mla.LatentNorms);
        Assert.Equal(scalar, mla.QueryPreAttnScalar);
        Assert.Equal(1 / Math.Sqrt(scalar ?? 24), mla.SoftmaxScale(config.Rope), 12);
    }

    [Theory]
    [InlineData(2, 4, false)]
    [InlineData(5, 4, false)]
    [InlineData(1, 4, true)]
    [InlineData(0, 0, false)]
    public void FirstKDenseReplace_CoveringAllLayers_MeansNoMoe(int firstDense, int experts, bool moe)
    {
        var config = DecoderConfig.Parse(
            "{\"model_type\":\"deepseek_v3\"," + Sizes + "," + MlaSizes + $",\"first_k_dense_replace\":{firstDense},\"n_routed_experts\":{experts},\"num_experts_per_tok\":2,\"moe_intermediate_size\":32}}",
            "c");
        Assert.Equal(moe, config.Moe is not null);
    }

    [Theory]
    [InlineData("{\"model_type\":\"gemma2_mla\"," + Sizes + "}", "model_type 'gemma2_mla' is not supported")]
    [InlineData("{\"model_type\":\"llama_mla\"," + Sizes + "," + MlaSizes + ",\"mlp_bias\":true}", "mlp_bias is not supported")]
    [InlineData("{\"model_type\":\"llama_mla\"," + Sizes + "," + MlaSizes + ",\"attn_logit_softcapping\":50.0}", "attn_logit_softcapping")]
    [InlineData("{\"model_type\":\"llama_mla\"," + Sizes + "," + MlaSizes + ",\"query_pre_attn_scalar\":0}", "query_pre_attn_scalar must be positive")]
    [InlineData("{\"model_type\":\"llama_mla\"," + Sizes + ",\"qk_nope_head_dim\":16}", "kv_lora_rank")]
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
