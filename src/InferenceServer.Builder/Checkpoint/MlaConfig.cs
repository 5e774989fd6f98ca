// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Checkpoint;

/// <summary>
/// DeepSeek-V3 Multi-head Latent Attention sizes (<c>model_type: deepseek_v3</c>). The KV cache holds, per token and
/// layer, the normalized latent (<see cref="KvLoraRank"/> wide) and the shared RoPE key (<see cref="QkRopeHeadDim"/>).
/// </summary>
/// <param name="QLoraRank">Rank of the query down-projection (<c>q_lora_rank</c>), or null for a plain <c>q_proj</c>.</param>
/// <param name="KvLoraRank">Width of the compressed KV latent (<c>kv_lora_rank</c>).</param>
/// <param name="QkNopeHeadDim">Per-head query/key width without RoPE (<c>qk_nope_head_dim</c>).</param>
/// <param name="QkRopeHeadDim">Per-head query/key width with RoPE (<c>qk_rope_head_dim</c>); the rope key is shared by all heads.</param>
/// <param name="VHeadDim">Per-head value width (<c>v_head_dim</c>).</param>
/// <param name="RopeInterleave">Whether RoPE pairs adjacent dims (<c>rope_interleave</c>) rather than halves.</param>
public sealed record MlaConfig(int? QLoraRank, int KvLoraRank, int QkNopeHeadDim, int QkRopeHeadDim, int VHeadDim, bool RopeInterleave)
{
    /// <summary>Per-head query/key width, nope plus rope (the softmax scale's dimension).</summary>
    public int QkHeadDim => QkNopeHeadDim + QkRopeHeadDim;
}
