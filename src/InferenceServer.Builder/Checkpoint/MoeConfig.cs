// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Checkpoint;

/// <summary>
/// Mixture-of-experts MLP settings. Two routings (<see cref="Routing"/>): DeepSeek-V3's (a sigmoid router with a
/// score-correction bias, group-limited top-k <c>noaux_tc</c>, optional normalization and a routed scaling factor, plus
/// always-on shared experts), and the softmax top-k of Qwen2-MoE, Qwen3-MoE and Mixtral (softmax over every expert in
/// fp32, the top k kept, renormalized when <c>norm_topk_prob</c>; Qwen2-MoE adds one shared expert behind a sigmoid gate).
/// </summary>
/// <param name="FirstMoeLayer">The first MoE layer (<c>first_k_dense_replace</c>); earlier layers have a dense MLP.</param>
/// <param name="RoutedExperts">Routed experts (<c>n_routed_experts</c>; <c>num_experts</c>, <c>num_local_experts</c>).</param>
/// <param name="ExpertsPerToken">Experts chosen per token (<c>num_experts_per_tok</c>).</param>
/// <param name="Groups">Expert groups (<c>n_group</c>; 1 for softmax routing).</param>
/// <param name="TopKGroups">Groups a token may choose from (<c>topk_group</c>; 1 for softmax routing).</param>
/// <param name="NormTopKProb">Whether the chosen weights are normalized to sum to 1 (<c>norm_topk_prob</c>).</param>
/// <param name="RoutedScalingFactor">Multiplier of the routed weights (<c>routed_scaling_factor</c>; 1 for softmax routing).</param>
/// <param name="ExpertIntermediateSize">Each expert's MLP width (<c>moe_intermediate_size</c>; Mixtral's <c>intermediate_size</c>).</param>
/// <param name="SharedExperts">Shared experts (<c>n_shared_experts</c>), folded into one MLP of that many times the width.</param>
public sealed record MoeConfig(
    int FirstMoeLayer,
    int RoutedExperts,
    int ExpertsPerToken,
    int Groups,
    int TopKGroups,
    bool NormTopKProb,
    double RoutedScalingFactor,
    int ExpertIntermediateSize,
    int SharedExperts)
{
    /// <summary>How tokens choose experts.</summary>
    public MoeRouting Routing { get; init; } = MoeRouting.SigmoidGroupLimited;

    /// <summary>
    /// Layers at or after <see cref="FirstMoeLayer"/> whose MLP is dense all the same: Qwen-MoE's <c>mlp_only_layers</c> and
    /// the layers that <c>decoder_sparse_step</c> skips.
    /// </summary>
    public IReadOnlyList<int> DenseLayers { get; init; } = [];

    /// <summary>The shared expert MLP's width: <see cref="SharedExperts"/> x the expert width, or Qwen2-MoE's <c>shared_expert_intermediate_size</c>.</summary>
    public int SharedIntermediateSize { get; init; } = -1;

    /// <summary>Whether the shared expert's output is scaled by <c>sigmoid(shared_expert_gate(y))</c> (Qwen2-MoE).</summary>
    public bool GatedSharedExpert { get; init; }

    /// <summary>The checkpoint's tensor names of a layer's experts (the Hub's per-expert layouts).</summary>
    public MoeWeightNames Names { get; init; } = MoeWeightNames.DeepSeek;

    /// <summary>The shared expert MLP's width (0 without one).</summary>
    public int SharedWidth => SharedIntermediateSize >= 0 ? SharedIntermediateSize : SharedExperts * ExpertIntermediateSize;

    /// <summary>Whether layer <paramref name="layer"/>'s MLP is the mixture of experts.</summary>
    public bool IsMoeLayer(int layer) => layer >= FirstMoeLayer && !DenseLayers.Contains(layer);
}

/// <summary>How a mixture-of-experts layer chooses its experts.</summary>
public enum MoeRouting
{
    /// <summary>DeepSeek-V3: sigmoid scores plus a correction bias, group-limited top-k, weights the plain scores.</summary>
    SigmoidGroupLimited,

    /// <summary>Qwen-MoE and Mixtral: softmax over every expert, top-k, optionally renormalized.</summary>
    Softmax,
}

/// <summary>
/// Where a layer's MoE tensors live under <c>model.layers.{i}.</c>: the block (<c>mlp</c>, Mixtral's
/// <c>block_sparse_moe</c>), the router (<c>gate</c>), each expert's gate, up and down projections under
/// <c>experts.{e}.</c>, and the shared expert's block.
/// </summary>
/// <param name="Block">The MoE block's name.</param>
/// <param name="Gate">An expert's gate projection.</param>
/// <param name="Up">An expert's up projection.</param>
/// <param name="Down">An expert's down projection.</param>
/// <param name="Shared">The shared expert block's name.</param>
public sealed record MoeWeightNames(string Block, string Gate, string Up, string Down, string Shared)
{
    /// <summary>DeepSeek-V2/V3: <c>mlp.experts.{e}.gate_proj</c>, <c>mlp.shared_experts</c>.</summary>
    public static MoeWeightNames DeepSeek { get; } = new("mlp", "gate_proj", "up_proj", "down_proj", "shared_experts");

    /// <summary>Qwen2-MoE and Qwen3-MoE: <c>mlp.experts.{e}.gate_proj</c>, <c>mlp.shared_expert</c> (+ <c>mlp.shared_expert_gate</c>).</summary>
    public static MoeWeightNames Qwen { get; } = new("mlp", "gate_proj", "up_proj", "down_proj", "shared_expert");

    /// <summary>Mixtral: <c>block_sparse_moe.experts.{e}.w1</c> (gate), <c>w3</c> (up), <c>w2</c> (down).</summary>
    public static MoeWeightNames Mixtral { get; } = new("block_sparse_moe", "w1", "w3", "w2", "shared_expert");
}
