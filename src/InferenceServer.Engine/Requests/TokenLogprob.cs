// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Requests;

/// <summary>One candidate token and its log-probability under the model's raw distribution.</summary>
/// <param name="TokenId">The token.</param>
/// <param name="Logprob">Its natural-log probability, ≤ 0.</param>
public readonly record struct TokenLogprob(int TokenId, float Logprob);
