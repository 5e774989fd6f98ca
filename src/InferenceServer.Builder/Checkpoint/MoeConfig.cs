// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Checkpoint;

/// <summary>
/// DeepSeek-V3 mixture-of-experts MLP settings (layers from <see cref="FirstMoeLayer"/> on): a sigmoid router with a
/// score-correction bias, group-limited top-k (<c>noaux_tc</c>), optional normalization and a routed scaling factor,
/// plus always-on shared experts.
/// </summary>
/// <param name="FirstMoeLayer">The first MoE layer (<c>first_k_dense_replace</c>); earlier layers have a dense MLP.</param>
/// <param name="RoutedExperts">Routed experts (<c>n_routed_experts</c>).</param>
/// <param name="ExpertsPerToken">Experts chosen per token (<c>num_experts_per_tok</c>).</param>
/// <param name="Groups">Expert groups (<c>n_group</c>).</param>
/// <param name="TopKGroups">Groups a token may choose from (<c>topk_group</c>).</param>
/// <param name="NormTopKProb">Whether the chosen weights are normalized to sum to 1 (<c>norm_topk_prob</c>).</param>
/// <param name="RoutedScalingFactor">Multiplier of the routed weights (<c>routed_scaling_factor</c>).</param>
/// <param name="ExpertIntermediateSize">Each expert's MLP width (<c>moe_intermediate_size</c>).</param>
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
    int SharedExperts);
