// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Requests;

/// <summary>
/// How the next token is chosen from the logits. The logits go through, in order (vLLM v1's order):
/// <see cref="LogitBias"/>, the penalties (<see cref="RepetitionPenalty"/>, <see cref="FrequencyPenalty"/>,
/// <see cref="PresencePenalty"/>), the request's <see cref="GenerationRequest.Constraint"/> mask, then
/// <see cref="Temperature"/>, <see cref="MinP"/>, <see cref="TopK"/> and <see cref="TopP"/>. Greedy decoding is the argmax
/// after the bias, penalties and mask. <see cref="Logprobs"/> and <see cref="PromptLogprobs"/> report the model's raw
/// distribution (before any of these steps).
/// </summary>
public sealed record SamplingParameters
{
    /// <summary>Greedy decoding: temperature 0.</summary>
    public static SamplingParameters Greedy { get; } = new() { Temperature = 0 };

    /// <summary>Softmax temperature; 0 picks the most likely token (greedy). Default 1.</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>Nucleus sampling: keep the smallest set of tokens whose probability reaches this. Default 1 (off).</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Keep only the k most likely tokens; 0 or -1 keeps all (the default).</summary>
    public int TopK { get; init; }

    /// <summary>Seed of the request's random generator; the same seed gives the same output. Null draws a fresh seed.</summary>
    public long? Seed { get; init; }

    /// <summary>
    /// Keep only tokens whose probability (after temperature) is at least this fraction of the most likely token's,
    /// in [0, 1]. Default 0 (off).
    /// </summary>
    public double MinP { get; init; }

    /// <summary>
    /// OpenAI's presence penalty: subtracted once from the logit of every token that occurs in the output so far.
    /// Default 0 (off); OpenAI allows [-2, 2].
    /// </summary>
    public double PresencePenalty { get; init; }

    /// <summary>
    /// OpenAI's frequency penalty: subtracted from a token's logit once per occurrence in the output so far.
    /// Default 0 (off); OpenAI allows [-2, 2].
    /// </summary>
    public double FrequencyPenalty { get; init; }

    /// <summary>
    /// Hugging Face's (and vLLM's) repetition penalty over the prompt and the output: the logit of every token that
    /// occurs in either is divided by this when positive and multiplied by it when not. Must be positive; default 1 (off).
    /// </summary>
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>
    /// Added to the logits of the given token ids before anything else (OpenAI's <c>logit_bias</c>; the host checks
    /// the OpenAI range [-100, 100]). Null or empty: none.
    /// </summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }

    /// <summary>
    /// Null: no logprobs. k ≥ 0: every generated token's update carries its logprob and the k most likely tokens
    /// (<see cref="GenerationUpdate.Logprobs"/>).
    /// </summary>
    public int? Logprobs { get; init; }

    /// <summary>
    /// Null: none. k ≥ 0: the request's first update carries, for every prompt token, its logprob given the tokens
    /// before it and the k most likely tokens there (<see cref="GenerationUpdate.PromptLogprobs"/>; the first prompt
    /// token has none). Such a request's prompt is never served from the prefix cache: every position is computed.
    /// </summary>
    public int? PromptLogprobs { get; init; }

    /// <summary>
    /// The settings of choice <paramref name="choice"/> of <paramref name="choices"/> completions of one prompt: with a
    /// seed, choice k draws from seed + k, so the choices differ and the whole response is reproducible.
    /// </summary>
    public SamplingParameters ForChoice(int choice, int choices)
        => choices > 1 && Seed is { } seed ? this with { Seed = unchecked(seed + choice) } : this;

    /// <summary>True when sampling reduces to argmax.</summary>
    internal bool IsGreedy => Temperature <= 0 || TopK == 1;

    /// <summary>True when any of the three penalties is on.</summary>
    internal bool HasPenalties => PresencePenalty != 0 || FrequencyPenalty != 0 || RepetitionPenalty != 1.0;

    /// <summary>
    /// Throws <see cref="ArgumentException"/> naming the parameter when a value cannot be applied to a model of
    /// <paramref name="vocabularySize"/> tokens (the host's stricter OpenAI ranges are its own business).
    /// </summary>
    public void Validate(int vocabularySize)
    {
        if (!double.IsFinite(Temperature) || Temperature < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "temperature must be a finite number ≥ 0.");
        }

        if (!(TopP > 0 && TopP <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "top_p must be in (0, 1].");
        }

        if (!(MinP >= 0 && MinP <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(MinP), MinP, "min_p must be in [0, 1].");
        }

        if (!double.IsFinite(PresencePenalty) || !double.IsFinite(FrequencyPenalty))
        {
            throw new ArgumentOutOfRangeException(nameof(PresencePenalty), "presence_penalty and frequency_penalty must be finite.");
        }

        if (!(RepetitionPenalty > 0) || !double.IsFinite(RepetitionPenalty))
        {
            throw new ArgumentOutOfRangeException(nameof(RepetitionPenalty), RepetitionPenalty, "repetition_penalty must be a finite number > 0.");
        }

        if (Logprobs < 0 || Logprobs > vocabularySize)
        {
            throw new ArgumentOutOfRangeException(nameof(Logprobs), Logprobs, $"logprobs must be in [0, {vocabularySize}].");
        }

        if (PromptLogprobs < 0 || PromptLogprobs > vocabularySize)
        {
            throw new ArgumentOutOfRangeException(nameof(PromptLogprobs), PromptLogprobs, $"prompt_logprobs must be in [0, {vocabularySize}].");
        }

        if (LogitBias is not null)
        {
            foreach (var (id, bias) in LogitBias)
            {
                if (id < 0 || id >= vocabularySize)
                {
                    throw new ArgumentOutOfRangeException(nameof(LogitBias), id, $"logit_bias names token {id}, outside the vocabulary [0, {vocabularySize}).");
                }

                if (!float.IsFinite(bias))
                {
                    throw new ArgumentOutOfRangeException(nameof(LogitBias), bias, $"logit_bias for token {id} must be finite.");
                }
            }
        }
    }
}
