// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Requests;

/// <summary>
/// The logprob report for one token position: the token there (generated, or the prompt's), its log-probability under
/// the model's raw distribution (log-softmax of the logits before bias, penalties, constraints, temperature and
/// filtering, as vLLM's default <c>raw_logprobs</c>), its rank, and the most likely tokens at that position.
/// </summary>
public sealed class TokenLogprobs
{
    /// <summary>Creates a report; <paramref name="top"/> is kept, not copied.</summary>
    public TokenLogprobs(int tokenId, float logprob, int rank, IReadOnlyList<TokenLogprob> top)
    {
        TokenId = tokenId;
        Logprob = logprob;
        Rank = rank;
        Top = top;
    }

    /// <summary>The token at this position.</summary>
    public int TokenId { get; }

    /// <summary>Its natural-log probability, ≤ 0.</summary>
    public float Logprob { get; }

    /// <summary>How many tokens are at least as likely, this one included: 1 for the most likely (vLLM's rank).</summary>
    public int Rank { get; }

    /// <summary>
    /// The k most likely tokens (k as requested), most likely first, ties by lower id; may or may not include
    /// <see cref="TokenId"/>.
    /// </summary>
    public IReadOnlyList<TokenLogprob> Top { get; }
}
