// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Requests;

/// <summary>
/// One message from the scheduler to a request's reader: a generated token with the text it completed (possibly
/// empty while a multi-byte character or a possible stop string is held back), or the final message with the finish
/// reason and counts.
/// </summary>
/// <remarks>
/// Logprobs are per token, not per text: every generated token has exactly one update, in order, and with
/// <see cref="SamplingParameters.Logprobs"/> set each carries that token's <see cref="Logprobs"/>, whether its text is
/// released now, later (held back) or never (a stop token, or text cut by a stop string). A reader that maps tokens
/// to text pieces aligns the i-th token update with the i-th entry; the final update carries no token and no logprobs.
/// </remarks>
/// <param name="TokenId">The generated token, or -1 on a final message that carries no token.</param>
/// <param name="Text">Text released by this update.</param>
/// <param name="Finish">The finish reason on the final message, else <see cref="FinishReason.None"/>.</param>
/// <param name="PromptTokens">Prompt length (final message).</param>
/// <param name="CompletionTokens">Tokens generated (final message).</param>
/// <param name="CachedPromptTokens">Prompt tokens served from the prefix cache (final message).</param>
/// <param name="Error">What went wrong, for <see cref="FinishReason.Error"/>.</param>
/// <param name="Logprobs">
/// This token's logprob report when <see cref="SamplingParameters.Logprobs"/> is set (raw model distribution); else null.
/// </param>
/// <param name="PromptLogprobs">
/// On the request's first update only (its first token's, or the final one if no token came), when
/// <see cref="SamplingParameters.PromptLogprobs"/> is set: one entry per prompt token, in order, entry 0 null (the first
/// token has no prefix to condition on). Null on every other update.
/// </param>
/// <param name="Timestamp">When the scheduler released the update (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>, the clock of <see cref="TimeProvider.System"/>); 0 if unknown.</param>
/// <param name="QueueTime">Time from submission to first scheduling, or to the end when never scheduled (final message).</param>
/// <param name="TimeToFirstToken">Time from submission to the first token; null when none was generated (final message).</param>
/// <param name="RequestFault">
/// On a <see cref="FinishReason.Error"/>: the request itself caused it (its output constraint allowed no token, or
/// exceeded its work budget), so the caller answers as for bad input (HTTP 400), not as for an engine fault.
/// </param>
public readonly record struct GenerationUpdate(
    int TokenId,
    string Text,
    FinishReason Finish = FinishReason.None,
    int PromptTokens = 0,
    int CompletionTokens = 0,
    int CachedPromptTokens = 0,
    string? Error = null,
    TokenLogprobs? Logprobs = null,
    IReadOnlyList<TokenLogprobs?>? PromptLogprobs = null,
    long Timestamp = 0,
    TimeSpan QueueTime = default,
    TimeSpan? TimeToFirstToken = null,
    bool RequestFault = false)
{
    /// <summary>True on the last message of a request.</summary>
    public bool IsFinal => Finish != FinishReason.None;
}
