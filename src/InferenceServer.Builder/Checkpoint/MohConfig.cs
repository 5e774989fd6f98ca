// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Checkpoint;

/// <summary>
/// Mixture-of-Head attention with MoH-LLaMA3's parameter-free <c>query_norm</c> router (<c>moh</c> in config.json):
/// the first <see cref="SharedHeads"/> query heads are always on; of the rest, the <see cref="RoutedActiveHeads"/>
/// whose query-norm score wins are on per token; heads that are off contribute zero to <c>o_proj</c>.
/// </summary>
/// <param name="SharedHeads">Always-on query heads (<c>num_shared_heads</c>).</param>
/// <param name="RoutedActiveHeads">Routed heads on per token (<c>num_routed_active_heads</c>).</param>
public sealed record MohConfig(int SharedHeads, int RoutedActiveHeads);
