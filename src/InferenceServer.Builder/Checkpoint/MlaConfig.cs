// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Checkpoint;

/// <summary>
/// DeepSeek-V3 Multi-head Latent Attention sizes (<c>model_type: deepseek_v3</c>, or TransMLA's <c>llama_mla</c>: a
/// GQA model converted to MLA). The KV cache holds, per token and layer, the (normalized) latent
/// (<see cref="KvLoraRank"/> wide) and the shared RoPE key (<see cref="QkRopeHeadDim"/>). Projection biases are not
/// part of the config: the graph uses whichever <c>.bias</c> tensors the checkpoint has (transformers' DeepSeek-V3 with
/// <c>attention_bias</c>: q_a_proj, kv_a_proj_with_mqa, o_proj; TransMLA: q_proj or q_b_proj, kv_a_proj_with_mqa, kv_b_proj).
/// </summary>
/// <param name="QLoraRank">Rank of the query down-projection (<c>q_lora_rank</c>), or null for a plain <c>q_proj</c>.</param>
/// <param name="KvLoraRank">Width of the compressed KV latent (<c>kv_lora_rank</c>).</param>
/// <param name="QkNopeHeadDim">Per-head query/key width without RoPE (<c>qk_nope_head_dim</c>).</param>
/// <param name="QkRopeHeadDim">Per-head query/key width with RoPE (<c>qk_rope_head_dim</c>); the rope key is shared by all heads.</param>
/// <param name="VHeadDim">Per-head value width (<c>v_head_dim</c>).</param>
/// <param name="RopeInterleave">Whether RoPE pairs adjacent dims (<c>rope_interleave</c>) rather than halves.</param>
public sealed record MlaConfig(int? QLoraRank, int KvLoraRank, int QkNopeHeadDim, int QkRopeHeadDim, int VHeadDim, bool RopeInterleave)
{
    /// <summary>Per-head query/key width, nope plus rope (the softmax scale's dimension unless <see cref="QueryPreAttnScalar"/> is set).</summary>
    public int QkHeadDim => QkNopeHeadDim + QkRopeHeadDim;

    /// <summary>
    /// Whether the checkpoint has <c>q_a_layernorm</c> (with a query LoRA) and <c>kv_a_layernorm</c>: true for DeepSeek-V3;
    /// TransMLA's converted models have none unless their config says <c>qk_latent_layernorm: true</c>. Default true.
    /// </summary>
    public bool LatentNorms { get; init; } = true;

    /// <summary>The config's <c>query_pre_attn_scalar</c> (TransMLA: the source model's head_dim), or null for <see cref="QkHeadDim"/>.</summary>
    public double? QueryPreAttnScalar { get; init; }

    /// <summary>
    /// The softmax scale: <c>query_pre_attn_scalar^-0.5</c> (else <c>qk_head_dim^-0.5</c>), times mscale^2 for YaRN
    /// scaling with <c>mscale_all_dim</c>, as transformers' DeepseekV3Attention and TransMLA's attention compute it.
    /// </summary>
    public double SoftmaxScale(RopeScaling rope)
    {
        var scale = 1.0 / Math.Sqrt(QueryPreAttnScalar ?? QkHeadDim);
        if (rope.Type == "yarn" && rope.MscaleAllDim is { } mscaleAllDim && rope.Factor > 1)
        {
            var mscale = (0.1 * mscaleAllDim * Math.Log(rope.Factor)) + 1.0;
            scale *= mscale * mscale;
        }

        return scale;
    }
}
