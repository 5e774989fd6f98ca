// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Text.Json;
using InferenceServer.Engine;
using InferenceServer.Engine.Requests;
using InferenceServer.Serving;

namespace InferenceServer.OpenAi;

/// <summary>
/// The sampling, stopping and output settings shared by <c>/v1/completions</c> and <c>/v1/chat/completions</c>, read
/// and validated from the request. Where the request is silent, the model's <c>generation_config.json</c> gives the
/// default (temperature, top_p, top_k, min_p, repetition_penalty, as vLLM does), then OpenAI's.
/// </summary>
internal sealed record GenerationSettings
{
    /// <summary>Most completions per prompt (<see cref="GenerationLimits.MaxN"/>, the same over gRPC).</summary>
    public const int MaxN = GenerationLimits.MaxN;

    /// <summary>Most alternatives per position in a logprobs report (<see cref="GenerationLimits.MaxLogprobs"/>).</summary>
    public const int MaxLogprobs = GenerationLimits.MaxLogprobs;

    /// <summary>Most <c>logit_bias</c> entries.</summary>
    public const int MaxLogitBias = 1024;

    /// <summary>Completions per prompt.</summary>
    public int N { get; init; } = 1;

    /// <summary>Sampling settings (with <see cref="SamplingParameters.Logprobs"/> and prompt logprobs as requested).</summary>
    public required SamplingParameters Sampling { get; init; }

    /// <summary>Stop settings.</summary>
    public required StopConditions Stop { get; init; }

    /// <summary>Whether to stream Server-Sent Events.</summary>
    public bool Stream { get; init; }

    /// <summary>Whether the stream ends with a usage chunk.</summary>
    public bool IncludeUsage { get; init; }

    /// <summary>vLLM's <c>return_token_ids</c>.</summary>
    public bool ReturnTokenIds { get; init; }

    /// <summary>Scheduling priority (lower first).</summary>
    public int Priority { get; init; }

    /// <summary>vLLM's <c>skip_special_tokens</c> (default true): leave special tokens out of the text.</summary>
    public bool SkipSpecialTokens { get; init; } = true;

    /// <summary>The request's <c>timeout</c> field (seconds, a vLLM-client convention; not in OpenAI's API), or null.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>Constrained output, if any.</summary>
    public ResponseFormat Format { get; init; } = ResponseFormat.Text;

    /// <summary>Whether any logprobs are reported.</summary>
    public bool WantsLogprobs => Sampling.Logprobs is not null;

    /// <summary>
    /// Reads the shared fields. <paramref name="defaultMaxTokens"/> is the endpoint's default for an absent
    /// <c>max_tokens</c> (already clamped to the context); <paramref name="longestPrompt"/> checks the context fit.
    /// </summary>
    public static GenerationSettings Read(JsonRequestReader reader, ServedModel model, int longestPrompt, int defaultMaxTokens, string maxTokensName, int? logprobs, int? promptLogprobs)
    {
        var vocab = model.Spec.VocabularySize;
        var context = model.Spec.ContextLength;
        if (longestPrompt >= context)
        {
            throw new RequestValidationException("prompt", $"This model's maximum context length is {context} tokens; the prompt has {longestPrompt} tokens, which leaves no room for a completion.");
        }

        var maxTokens = (int?)reader.Integer(maxTokensName, 1, int.MaxValue) ?? defaultMaxTokens;
        // In long: a prompt plus int.MaxValue must not wrap around to a small number that passes.
        var requested = (long)longestPrompt + maxTokens;
        if (requested > context)
        {
            throw new RequestValidationException(maxTokensName, $"This model's maximum context length is {context} tokens. However, you requested {requested} tokens ({longestPrompt} in the prompt, {maxTokens} for the completion). Reduce the prompt or '{maxTokensName}'.");
        }

        var minTokens = (int?)reader.Integer("min_tokens", 0, int.MaxValue) ?? 0;
        if (minTokens > maxTokens)
        {
            throw new RequestValidationException("min_tokens", $"'min_tokens' ({minTokens}) must not exceed '{maxTokensName}' ({maxTokens}).");
        }

        var defaults = model.Package.Generation;
        var topK = (int?)reader.Integer("top_k", -1, vocab) ?? defaults.TopK ?? 0;
        var sampling = new SamplingParameters
        {
            Temperature = reader.Number("temperature", 0, 2) ?? defaults.Temperature ?? 1.0,
            TopP = reader.Number("top_p", double.Epsilon, 1) ?? defaults.TopP ?? 1.0,
            TopK = topK < 0 ? 0 : topK,
            MinP = reader.Number("min_p", 0, 1) ?? defaults.MinP ?? 0,
            PresencePenalty = reader.Number("presence_penalty", -2, 2) ?? 0,
            FrequencyPenalty = reader.Number("frequency_penalty", -2, 2) ?? 0,
            RepetitionPenalty = reader.Number("repetition_penalty", 0.01, 10) ?? defaults.RepetitionPenalty ?? 1.0,
            LogitBias = ReadLogitBias(reader, vocab),
            Seed = reader.Integer("seed", long.MinValue, long.MaxValue),
            Logprobs = logprobs,
            PromptLogprobs = promptLogprobs,
        };

        var includeUsage = ReadStreamOptions(reader);
        var stream = reader.Bool("stream") ?? false;
        if (includeUsage && !stream)
        {
            throw new RequestValidationException("stream_options", "'stream_options' is only allowed when 'stream' is true.");
        }

        _ = reader.String("user");
        if (reader.TryGet("best_of", out var bestOf) && !(bestOf.ValueKind == JsonValueKind.Number && bestOf.TryGetInt32(out var b) && b == 1))
        {
            throw new RequestValidationException("best_of", "'best_of' other than 1 is not supported.");
        }

        return new GenerationSettings
        {
            N = (int?)reader.Integer("n", 1, MaxN) ?? 1,
            Sampling = sampling,
            Stop = new StopConditions
            {
                MaxTokens = maxTokens,
                MinTokens = minTokens,
                StopStrings = ReadStops(reader),
                StopTokenIds = reader.Integers("stop_token_ids", 0, vocab - 1) ?? [],
                IgnoreEos = reader.Bool("ignore_eos") ?? false,
            },
            Stream = stream,
            IncludeUsage = includeUsage,
            ReturnTokenIds = reader.Bool("return_token_ids") ?? false,
            SkipSpecialTokens = reader.Bool("skip_special_tokens") ?? true,
            Priority = (int?)reader.Integer("priority", int.MinValue, int.MaxValue) ?? 0,
            Format = ResponseFormat.Read(reader),
            Timeout = ReadTimeout(reader),
        };
    }

    private static TimeSpan? ReadTimeout(JsonRequestReader reader)
    {
        if (reader.Number("timeout", 0, ServingLimits.LongestTimeoutSeconds) is not { } seconds)
        {
            return null;
        }

        if (seconds < ServingLimits.ShortestTimeoutSeconds)
        {
            throw new RequestValidationException("timeout", string.Create(CultureInfo.InvariantCulture, $"'timeout' must be a number of seconds from {ServingLimits.ShortestTimeoutSeconds} to {ServingLimits.LongestTimeoutSeconds}; got {seconds}."));
        }

        return TimeSpan.FromSeconds(seconds);
    }

    /// <summary>The sampling settings of choice <paramref name="k"/>: with a seed, each choice draws from seed + k.</summary>
    public SamplingParameters ForChoice(int k) => Sampling.ForChoice(k, N);

    private static Dictionary<int, float>? ReadLogitBias(JsonRequestReader reader, int vocab)
    {
        if (!reader.TryGet("logit_bias", out var element))
        {
            return null;
        }

        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new RequestValidationException("logit_bias", $"'logit_bias' must be an object mapping token ids to biases, not {JsonRequestReader.Describe(element)}.");
        }

        var bias = new Dictionary<int, float>();
        foreach (var property in element.EnumerateObject())
        {
            if (!int.TryParse(property.Name, NumberStyles.None, CultureInfo.InvariantCulture, out var id) || id >= vocab)
            {
                throw new RequestValidationException("logit_bias", $"'logit_bias' keys must be token ids in [0, {vocab - 1}]; got '{property.Name}'.");
            }

            if (property.Value.ValueKind != JsonValueKind.Number || !property.Value.TryGetDouble(out var value) || !double.IsFinite(value) || value < -100 || value > 100)
            {
                throw new RequestValidationException("logit_bias", $"'logit_bias' values must be numbers between -100 and 100; token {id} has {property.Value.GetRawText()}.");
            }

            if (bias.Count == MaxLogitBias)
            {
                throw new RequestValidationException("logit_bias", $"'logit_bias' may hold at most {MaxLogitBias} entries.");
            }

            bias[id] = (float)value;
        }

        return bias.Count > 0 ? bias : null;
    }

    private static IReadOnlyList<string> ReadStops(JsonRequestReader reader)
    {
        var stops = reader.StringOrStrings("stop", 16) ?? [];
        foreach (var stop in stops)
        {
            if (stop.Length == 0)
            {
                throw new RequestValidationException("stop", "'stop' strings must not be empty.");
            }
        }

        return stops;
    }

    private static bool ReadStreamOptions(JsonRequestReader reader)
    {
        if (!reader.TryGet("stream_options", out var options))
        {
            return false;
        }

        var inner = new JsonRequestReader(options, "stream_options");
        _ = inner.Bool("continuous_usage_stats");
        return inner.Bool("include_usage") ?? false;
    }
}
