// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine;
using InferenceServer.Engine.Requests;
using InferenceServer.Serving;
using EngineSampling = InferenceServer.Engine.Requests.SamplingParameters;
using ProtoSampling = InferenceServer.Grpc.V1.SamplingParameters;
using ProtoStop = InferenceServer.Grpc.V1.StopConditions;

namespace InferenceServer.Grpc;

/// <summary>
/// Checks a <see cref="V1.GenerateRequest"/> against the served model and maps it to the engine's types, with the same
/// limits and defaults as the HTTP API (<see cref="GenerationLimits"/>). Every failure is an INVALID_ARGUMENT whose
/// message starts with the field's path; an unknown model is NOT_FOUND.
/// </summary>
internal static class GenerateRequestMapper
{
    /// <summary>Longest client-chosen request id.</summary>
    public const int MaxRequestIdLength = RequestIds.MaxLength;

    /// <summary>Most stop strings, as in the HTTP API.</summary>
    public const int MaxStopStrings = 16;

    /// <summary>Most alternatives per position with logprobs (OpenAI's limit).</summary>
    public const int MaxTopLogprobs = GenerationLimits.MaxLogprobs;

    /// <summary>Lowest <c>sampling.temperature</c> (greedy).</summary>
    internal const double MinTemperature = 0;

    /// <summary>Highest <c>sampling.temperature</c>, as OpenAI documents.</summary>
    internal const double MaxTemperature = 2;

    /// <summary>Highest <c>sampling.top_p</c>; the lowest is exclusive 0.</summary>
    internal const double MaxTopP = 1;

    /// <summary>Lowest <c>sampling.min_p</c> (off).</summary>
    internal const double MinMinP = 0;

    /// <summary>Highest <c>sampling.min_p</c>.</summary>
    internal const double MaxMinP = 1;

    /// <summary>Lowest <c>sampling.presence_penalty</c> and <c>sampling.frequency_penalty</c> (OpenAI's).</summary>
    internal const double MinPenalty = -2;

    /// <summary>Highest <c>sampling.presence_penalty</c> and <c>sampling.frequency_penalty</c> (OpenAI's).</summary>
    internal const double MaxPenalty = 2;

    /// <summary>Lowest <c>sampling.repetition_penalty</c>, as in the HTTP API.</summary>
    internal const double MinRepetitionPenalty = 0.01;

    /// <summary>Highest <c>sampling.repetition_penalty</c>, as in the HTTP API.</summary>
    internal const double MaxRepetitionPenalty = 10;

    /// <summary>Lowest value in <c>sampling.logit_bias</c> (OpenAI's).</summary>
    internal const double MinLogitBias = -100;

    /// <summary>Highest value in <c>sampling.logit_bias</c> (OpenAI's).</summary>
    internal const double MaxLogitBias = 100;

    /// <summary>Validates <paramref name="request"/>; throws <see cref="global::Grpc.Core.RpcException"/> on the first problem.</summary>
    public static ValidatedGenerateRequest Map(V1.GenerateRequest request, ServedModel model)
    {
        ValidateRequestId(request.RequestId);
        CheckModel(request.Model, model);
        var prompt = ReadPrompt(request, model);
        var n = request.Sampling is { HasN: true, N: not 0 } ? request.Sampling.N : 1u;
        if (n > GenerationLimits.MaxN)
        {
            throw GrpcErrors.InvalidArgument("sampling.n", $"must be between 1 and {GenerationLimits.MaxN}; got {n}.");
        }

        return new ValidatedGenerateRequest
        {
            PromptTokens = prompt,
            N = (int)n,
            Sampling = MapSampling(request.Sampling, model),
            Stop = MapStop(request.Stop, prompt.Count, model),
            Priority = request.Priority,
        };
    }

    /// <summary>NOT_FOUND unless <paramref name="requested"/> is empty or the served model's id.</summary>
    public static void CheckModel(string requested, ServedModel model)
    {
        if (requested.Length > 0 && !model.Serves(requested))
        {
            throw GrpcErrors.ModelNotFound(requested, model.Name);
        }
    }

    /// <summary>
    /// THE ONE MAPPING of the proto's sampling fields to the engine's <see cref="EngineSampling"/>. Every field is range
    /// checked here with the HTTP API's limits (penalties in [-2, 2], repetition_penalty in [0.01, 10], logit_bias in
    /// [-100, 100], top_logprobs up to 20).
    /// (<c>n</c> is read by <see cref="Map"/>: it is the number of engine requests, not a per-request setting.)
    /// </summary>
    internal static EngineSampling MapSampling(ProtoSampling? sampling, ServedModel model)
    {
        if (sampling is null)
        {
            return new EngineSampling();
        }

        var vocab = model.Spec.VocabularySize;
        var temperature = sampling.HasTemperature ? Range("sampling.temperature", sampling.Temperature, MinTemperature, MaxTemperature) : 1.0;
        var topP = sampling.HasTopP ? Range("sampling.top_p", sampling.TopP, double.Epsilon, MaxTopP, $"in (0, {MaxTopP}]") : 1.0;
        var topK = sampling.HasTopK ? sampling.TopK : 0;
        if (topK < -1 || topK > vocab)
        {
            throw GrpcErrors.InvalidArgument("sampling.top_k", $"must be between -1 and the vocabulary size {vocab} (0 or -1: off); got {topK}.");
        }

        var minP = sampling.HasMinP ? Range("sampling.min_p", sampling.MinP, MinMinP, MaxMinP) : 0;
        var presence = sampling.HasPresencePenalty ? Range("sampling.presence_penalty", sampling.PresencePenalty, MinPenalty, MaxPenalty) : 0;
        var frequency = sampling.HasFrequencyPenalty ? Range("sampling.frequency_penalty", sampling.FrequencyPenalty, MinPenalty, MaxPenalty) : 0;
        var repetition = sampling.HasRepetitionPenalty ? Range("sampling.repetition_penalty", sampling.RepetitionPenalty, MinRepetitionPenalty, MaxRepetitionPenalty, $"in [{MinRepetitionPenalty}, {MaxRepetitionPenalty}]") : 1;
        Dictionary<int, float>? logitBias = null;
        foreach (var (token, bias) in sampling.LogitBias)
        {
            if (token >= (uint)vocab)
            {
                throw GrpcErrors.InvalidArgument("sampling.logit_bias", $"token id {token} is outside the vocabulary [0, {vocab - 1}].");
            }

            logitBias ??= [];
            logitBias[(int)token] = (float)Range("sampling.logit_bias", bias, MinLogitBias, MaxLogitBias);
        }

        if (sampling.HasTopLogprobs && sampling.TopLogprobs > MaxTopLogprobs)
        {
            throw GrpcErrors.InvalidArgument("sampling.top_logprobs", $"must be between 0 and {MaxTopLogprobs}; got {sampling.TopLogprobs}.");
        }

        if (sampling.HasTopLogprobs && !sampling.Logprobs)
        {
            throw GrpcErrors.InvalidArgument("sampling.top_logprobs", "needs sampling.logprobs = true.");
        }

        return new EngineSampling
        {
            Temperature = temperature,
            TopP = topP,
            TopK = topK < 0 ? 0 : topK,
            Seed = sampling.HasSeed ? sampling.Seed : null,
            MinP = minP,
            PresencePenalty = presence,
            FrequencyPenalty = frequency,
            RepetitionPenalty = repetition,
            LogitBias = logitBias,
            Logprobs = sampling.Logprobs ? (int)(sampling.HasTopLogprobs ? sampling.TopLogprobs : 0) : null,
        };
    }

    private static StopConditions MapStop(ProtoStop? stop, int promptLength, ServedModel model)
    {
        var context = model.Spec.ContextLength;
        var vocab = model.Spec.VocabularySize;
        stop ??= new ProtoStop();

        // Absent: the HTTP API's default of 16, shortened to what the context leaves.
        var maxTokens = stop.HasMaxTokens ? stop.MaxTokens : (uint)Math.Clamp(context - promptLength, 1, GenerationLimits.DefaultMaxTokens);
        if (maxTokens < 1)
        {
            throw GrpcErrors.InvalidArgument("stop.max_tokens", "must be at least 1 (leave it unset for the default of 16).");
        }

        if ((ulong)promptLength + maxTokens > (ulong)context)
        {
            throw GrpcErrors.InvalidArgument("stop.max_tokens", $"this model's maximum context length is {context} tokens; you requested {(ulong)promptLength + maxTokens} ({promptLength} in the prompt, {maxTokens} for the completion). Reduce the prompt or max_tokens.");
        }

        if (stop.MinTokens > maxTokens)
        {
            throw GrpcErrors.InvalidArgument("stop.min_tokens", $"({stop.MinTokens}) must not exceed max_tokens ({maxTokens}).");
        }

        if (stop.Stop.Count > MaxStopStrings)
        {
            throw GrpcErrors.InvalidArgument("stop.stop", $"at most {MaxStopStrings} stop strings; got {stop.Stop.Count}.");
        }

        var strings = new string[stop.Stop.Count];
        for (var i = 0; i < strings.Length; i++)
        {
            strings[i] = stop.Stop[i].Length > 0 ? stop.Stop[i] : throw GrpcErrors.InvalidArgument("stop.stop", $"stop strings must not be empty (entry {i} is).");
        }

        var ids = new int[stop.StopTokenIds.Count];
        for (var i = 0; i < ids.Length; i++)
        {
            ids[i] = (int)CheckToken("stop.stop_token_ids", stop.StopTokenIds[i], vocab);
        }

        return new StopConditions
        {
            MaxTokens = (int)maxTokens,
            MinTokens = (int)stop.MinTokens,
            StopStrings = strings,
            StopTokenIds = ids,
            IgnoreEos = stop.IgnoreEos,
        };
    }

    private static List<int> ReadPrompt(V1.GenerateRequest request, ServedModel model)
    {
        List<int> prompt;
        string field;
        switch (request.InputCase)
        {
            case V1.GenerateRequest.InputOneofCase.Text:
                field = "text";
                if (request.Text.Length == 0)
                {
                    throw GrpcErrors.InvalidArgument(field, "the prompt is empty.");
                }

                if (model.Tokenizer is null)
                {
                    throw GrpcErrors.InvalidArgument(field, $"the model '{model.Name}' has no tokenizer (its folder has no tokenizer.json), so it takes token-id prompts only; send token_ids instead.");
                }

                prompt = [.. model.Tokenizer.Encode(request.Text, addSpecialTokens: true)];
                if (prompt.Count == 0)
                {
                    throw GrpcErrors.InvalidArgument(field, "the prompt encodes to no tokens.");
                }

                break;
            case V1.GenerateRequest.InputOneofCase.TokenIds:
                field = "token_ids";
                var ids = request.TokenIds.Ids;
                if (ids.Count == 0)
                {
                    throw GrpcErrors.InvalidArgument("token_ids.ids", "a token-id prompt must not be empty.");
                }

                prompt = new List<int>(ids.Count);
                foreach (var id in ids)
                {
                    prompt.Add((int)CheckToken("token_ids.ids", id, model.Spec.VocabularySize));
                }

                break;
            default:
                throw GrpcErrors.InvalidArgument("input", "set the prompt as 'text' or 'token_ids'.");
        }

        var context = model.Spec.ContextLength;
        if (prompt.Count >= context)
        {
            throw GrpcErrors.InvalidArgument(field, $"this model's maximum context length is {context} tokens; the prompt has {prompt.Count} tokens, which leaves no room for a completion.");
        }

        return prompt;
    }

    private static void ValidateRequestId(string id)
    {
        if (id.Length > MaxRequestIdLength)
        {
            throw GrpcErrors.InvalidArgument("request_id", $"at most {MaxRequestIdLength} characters; got {id.Length}.");
        }

        // The same rule as the HTTP API's X-Request-Id; empty means the server chooses one.
        if (id.Length > 0 && !RequestIds.IsUsable(id))
        {
            throw GrpcErrors.InvalidArgument("request_id", "only printable ASCII characters without spaces are allowed.");
        }
    }

    private static uint CheckToken(string field, uint id, int vocab)
        => id < (uint)vocab ? id : throw GrpcErrors.InvalidArgument(field, $"token id {id} is outside the vocabulary [0, {vocab - 1}].");

    private static double Range(string field, double value, double min, double max, string? describe = null)
        => value >= min && value <= max
            ? value
            : throw GrpcErrors.InvalidArgument(field, $"must be {describe ?? $"between {min} and {max}"}; got {value}.");
}
