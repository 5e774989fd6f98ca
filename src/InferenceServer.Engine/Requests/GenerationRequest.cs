// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Requests;

/// <summary>One sequence to generate: validated by the host, owned by the scheduler once submitted.</summary>
public sealed record GenerationRequest
{
    /// <summary>Caller-visible id, used in logs.</summary>
    public required string RequestId { get; init; }

    /// <summary>The prompt as token ids (at least one).</summary>
    public required IReadOnlyList<int> PromptTokens { get; init; }

    /// <summary>How tokens are chosen.</summary>
    public required SamplingParameters Sampling { get; init; }

    /// <summary>When generation ends.</summary>
    public required StopConditions Stop { get; init; }

    /// <summary>
    /// Requests with the same group object share one prompt (the <c>n</c> choices of one request): the scheduler
    /// admits one of them first and the others once its prompt is in the cache, so they reuse its KV blocks instead of
    /// recomputing them. Null for an ordinary request.
    /// </summary>
    public object? PrefixGroup { get; init; }

    /// <summary>
    /// Restricts the tokens this request may generate (structured output), or null. Stateful and used by this request
    /// only: each of the <c>n</c> choices of one client request needs its own instance (a record <c>with</c> copy shares it).
    /// </summary>
    public ITokenConstraint? Constraint { get; init; }

    /// <summary>
    /// Whether special tokens are left out of the output text (vLLM's <c>skip_special_tokens</c>, default true). Tool
    /// calling turns it off where a template's tool-call markers are special tokens.
    /// </summary>
    public bool SkipSpecialTokens { get; init; } = true;

    /// <summary>Scheduling priority: lower values are served first; ties are first come, first served. Default 0.</summary>
    public int Priority { get; init; }
}
