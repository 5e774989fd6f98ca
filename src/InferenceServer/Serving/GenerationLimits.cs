// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Serving;

/// <summary>
/// The bounds and defaults of a generation request that do not depend on its protocol: the OpenAI endpoints and the
/// gRPC mapper enforce the same numbers, so that a client gets the same answer over either.
/// </summary>
internal static class GenerationLimits
{
    /// <summary>Most completions per prompt (OpenAI's <c>n</c>, gRPC's <c>sampling.n</c>).</summary>
    public const int MaxN = 16;

    /// <summary>Most alternatives per position in a logprobs report (vLLM's default <c>max_logprobs</c>).</summary>
    public const int MaxLogprobs = 20;

    /// <summary>
    /// The default most tokens to generate when a completion request names none: OpenAI's 16 for
    /// <c>/v1/completions</c> and gRPC's <c>stop.max_tokens</c>, shortened by the caller to what the context leaves.
    /// </summary>
    public const int DefaultMaxTokens = 16;
}
