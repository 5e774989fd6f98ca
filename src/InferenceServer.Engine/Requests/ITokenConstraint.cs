// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Requests;

/// <summary>
/// Restricts which tokens a request may generate (structured output: a JSON schema, a grammar, a choice list).
/// One instance per request, stateful: the scheduler loop is its only caller, one call at a time. Each step it calls
/// <see cref="MaskLogits"/> on the request's logits (after the logit bias and the penalties, before temperature), and,
/// once a token is chosen, <see cref="Accept"/> with it. The <c>n</c> choices of one request each need their own instance.
/// </summary>
public interface ITokenConstraint
{
    /// <summary>
    /// Sets the logits of every token not allowed next to negative infinity, leaving the others untouched. Masking every
    /// token ends the request with <see cref="FinishReason.Error"/>. Called on the scheduler loop, once per generated
    /// token: it must not allocate per call or block, and its cost must be bounded when the constraint is built (not
    /// found out here). An exception (such as a work budget exceeded) ends this request alone with
    /// <see cref="FinishReason.Error"/>; the other sequences of the step go on.
    /// </summary>
    void MaskLogits(Span<float> logits);

    /// <summary>
    /// Advances the constraint's state past <paramref name="tokenId"/>, the token just generated (always one
    /// <see cref="MaskLogits"/> allowed, end-of-sequence included). False ends the request with <see cref="FinishReason.Error"/>.
    /// </summary>
    bool Accept(int tokenId);

    /// <summary>
    /// True once the constraint has accepted its own end (end-of-sequence after a complete structure) and allows nothing
    /// more: the sequence then ends there even with <c>ignore_eos</c>, as a terminated grammar ends a request in vLLM.
    /// Default false.
    /// </summary>
    bool IsTerminated => false;
}
