// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using InferenceServer.Engine;
using InferenceServer.Engine.Requests;

namespace InferenceServer.OpenAi;

/// <summary>A validated <c>POST /v1/completions</c> request: one prompt per choice, with sampling and stop settings.</summary>
internal sealed class CompletionRequest
{
    /// <summary>OpenAI's default <c>max_tokens</c> for completions.</summary>
    public const int DefaultMaxTokens = 16;

    /// <summary>Most completions per prompt.</summary>
    public const int MaxN = 16;

    /// <summary>Prompts as token ids, one choice each (times <see cref="N"/>).</summary>
    public required IReadOnlyList<IReadOnlyList<int>> Prompts { get; init; }

    /// <summary>Completions per prompt.</summary>
    public int N { get; init; } = 1;

    /// <summary>Sampling settings.</summary>
    public required SamplingParameters Sampling { get; init; }

    /// <summary>Stop settings.</summary>
    public required StopConditions Stop { get; init; }

    /// <summary>Whether to stream Server-Sent Events.</summary>
    public bool Stream { get; init; }

    /// <summary>Whether the stream ends with a usage chunk.</summary>
    public bool IncludeUsage { get; init; }

    /// <summary>vLLM's <c>return_token_ids</c>: add <c>prompt_token_ids</c> and <c>token_ids</c> to each choice.</summary>
    public bool ReturnTokenIds { get; init; }

    /// <summary>Scheduling priority (lower first).</summary>
    public int Priority { get; init; }

    /// <summary>Parses and validates <paramref name="body"/> against <paramref name="model"/>.</summary>
    public static CompletionRequest Parse(JsonElement body, ServedModel model)
    {
        var reader = new JsonRequestReader(body);
        var name = reader.String("model");
        if (name is not null && name != model.Name)
        {
            throw new RequestValidationException("model", $"The model '{name}' does not exist; this server serves '{model.Name}'.", StatusCodes.Status404NotFound, "invalid_request_error", "model_not_found");
        }

        if (!reader.TryGet("prompt", out var promptElement))
        {
            throw new RequestValidationException("prompt", "'prompt' is required.");
        }

        var prompts = ReadPrompts(promptElement, model);
        var vocab = model.Spec.VocabularySize;
        var context = model.Spec.ContextLength;

        var longestPrompt = 0;
        foreach (var prompt in prompts)
        {
            longestPrompt = Math.Max(longestPrompt, prompt.Count);
        }

        // Without max_tokens, OpenAI's default of 16, shortened to what the context leaves.
        var maxTokens = (int?)reader.Integer("max_tokens", 1, int.MaxValue) ?? Math.Clamp(context - longestPrompt, 1, DefaultMaxTokens);
        var minTokens = (int?)reader.Integer("min_tokens", 0, int.MaxValue) ?? 0;
        if (minTokens > maxTokens)
        {
            throw new RequestValidationException("min_tokens", $"'min_tokens' ({minTokens}) must not exceed 'max_tokens' ({maxTokens}).");
        }

        foreach (var prompt in prompts)
        {
            if (prompt.Count >= context)
            {
                throw new RequestValidationException("prompt", $"This model's maximum context length is {context} tokens; the prompt has {prompt.Count} tokens, which leaves no room for a completion.");
            }

            if (prompt.Count + maxTokens > context)
            {
                throw new RequestValidationException("max_tokens", $"This model's maximum context length is {context} tokens. However, you requested {prompt.Count + maxTokens} tokens ({prompt.Count} in the prompt, {maxTokens} for the completion). Reduce the prompt or 'max_tokens'.");
            }
        }

        var n = (int?)reader.Integer("n", 1, MaxN) ?? 1;
        var temperature = reader.Number("temperature", 0, 2) ?? 1.0;
        var topP = reader.Number("top_p", double.Epsilon, 1) ?? 1.0;
        var topK = (int?)reader.Integer("top_k", -1, vocab) ?? 0;
        var seed = reader.Integer("seed", long.MinValue, long.MaxValue);

        RejectUnsupported(reader);

        var streamOptions = ReadStreamOptions(reader);
        var stream = reader.Bool("stream") ?? false;
        if (streamOptions && !stream)
        {
            throw new RequestValidationException("stream_options", "'stream_options' is only allowed when 'stream' is true.");
        }

        _ = reader.String("user");
        return new CompletionRequest
        {
            Prompts = prompts,
            N = n,
            Sampling = new SamplingParameters { Temperature = temperature, TopP = topP, TopK = topK < 0 ? 0 : topK, Seed = seed },
            Stop = new StopConditions
            {
                MaxTokens = maxTokens,
                MinTokens = minTokens,
                StopStrings = ReadStops(reader),
                StopTokenIds = reader.Integers("stop_token_ids", 0, vocab - 1) ?? [],
                IgnoreEos = reader.Bool("ignore_eos") ?? false,
            },
            Stream = stream,
            IncludeUsage = streamOptions,
            ReturnTokenIds = reader.Bool("return_token_ids") ?? false,
            Priority = (int?)reader.Integer("priority", int.MinValue, int.MaxValue) ?? 0,
        };
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

        return new JsonRequestReader(options).Bool("include_usage") ?? false;
    }

    private static void RejectUnsupported(JsonRequestReader reader)
    {
        // Accepted in their "off" form so that clients sending defaults work; the features themselves come later.
        if (reader.Bool("echo") == true)
        {
            throw new RequestValidationException("echo", "'echo' is not supported by this server yet.");
        }

        if (reader.TryGet("logprobs", out var logprobs) && !(logprobs.ValueKind == JsonValueKind.False))
        {
            throw new RequestValidationException("logprobs", "'logprobs' is not supported by this server yet.");
        }

        if (reader.TryGet("best_of", out var bestOf) && !(bestOf.ValueKind == JsonValueKind.Number && bestOf.TryGetInt32(out var b) && b == 1))
        {
            throw new RequestValidationException("best_of", "'best_of' other than 1 is not supported.");
        }

        if (reader.TryGet("suffix", out _))
        {
            throw new RequestValidationException("suffix", "'suffix' is not supported.");
        }

        foreach (var name in (string[])["presence_penalty", "frequency_penalty"])
        {
            if (reader.Number(name, -2, 2) is { } value && value != 0)
            {
                throw new RequestValidationException(name, $"'{name}' is not supported by this server yet.");
            }
        }

        if (reader.TryGet("logit_bias", out var bias) && !(bias.ValueKind == JsonValueKind.Object && !bias.EnumerateObject().Any()))
        {
            throw new RequestValidationException("logit_bias", "'logit_bias' is not supported by this server yet.");
        }
    }

    private static List<IReadOnlyList<int>> ReadPrompts(JsonElement prompt, ServedModel model)
    {
        var prompts = new List<IReadOnlyList<int>>();
        switch (prompt.ValueKind)
        {
            case JsonValueKind.String:
                prompts.Add(Tokenize(prompt.GetString()!, model));
                break;
            case JsonValueKind.Array when prompt.GetArrayLength() == 0:
                throw new RequestValidationException("prompt", "'prompt' must not be empty.");
            case JsonValueKind.Array when prompt[0].ValueKind == JsonValueKind.Number:
                prompts.Add(ReadTokenIds(prompt, model));
                break;
            case JsonValueKind.Array:
                foreach (var item in prompt.EnumerateArray())
                {
                    prompts.Add(item.ValueKind switch
                    {
                        JsonValueKind.String => Tokenize(item.GetString()!, model),
                        JsonValueKind.Array => ReadTokenIds(item, model),
                        _ => throw new RequestValidationException("prompt", $"'prompt' arrays must hold strings or arrays of token ids, found {JsonRequestReader.Describe(item)}."),
                    });
                }

                break;
            default:
                throw new RequestValidationException("prompt", $"'prompt' must be a string, an array of token ids, or an array of either; got {JsonRequestReader.Describe(prompt)}.");
        }

        if (prompts.Count > 64)
        {
            throw new RequestValidationException("prompt", $"At most 64 prompts per request; got {prompts.Count}.");
        }

        return prompts;
    }

    private static List<int> ReadTokenIds(JsonElement array, ServedModel model)
    {
        var vocab = model.Spec.VocabularySize;
        var ids = new List<int>(array.GetArrayLength());
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out var id))
            {
                throw new RequestValidationException("prompt", $"Token-id prompts must hold integers, found {JsonRequestReader.Describe(item)}.");
            }

            if (id < 0 || id >= vocab)
            {
                throw new RequestValidationException("prompt", $"Token id {id} is outside the vocabulary [0, {vocab - 1}].");
            }

            ids.Add((int)id);
        }

        return ids.Count > 0 ? ids : throw new RequestValidationException("prompt", "A token-id prompt must not be empty.");
    }

    private static List<int> Tokenize(string text, ServedModel model)
    {
        if (model.Tokenizer is null)
        {
            throw new RequestValidationException("prompt", $"The model '{model.Name}' has no tokenizer (its folder has no tokenizer.json), so it takes token-id prompts only; send 'prompt' as an array of integers.");
        }

        var ids = model.Tokenizer.Encode(text, addSpecialTokens: true);
        return ids.Count > 0 ? [.. ids] : throw new RequestValidationException("prompt", "The prompt is empty.");
    }
}
