// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using InferenceServer.Engine;
using InferenceServer.Serving;

namespace InferenceServer.OpenAi;

/// <summary>A validated <c>POST /v1/completions</c> request: one prompt per choice, with sampling and stop settings.</summary>
internal sealed class CompletionRequest
{
    /// <summary>OpenAI's default <c>max_tokens</c> for completions (<see cref="GenerationLimits.DefaultMaxTokens"/>, the serving default).</summary>
    public const int DefaultMaxTokens = GenerationLimits.DefaultMaxTokens;

    /// <summary>Prompts as token ids, one choice each (times <see cref="N"/>).</summary>
    public required IReadOnlyList<IReadOnlyList<int>> Prompts { get; init; }

    /// <summary>Each prompt's text as sent, or null for a token-id prompt (echo decodes those).</summary>
    public required IReadOnlyList<string?> PromptTexts { get; init; }

    /// <summary>The text <c>echo</c> puts before choice text for prompt <paramref name="index"/>.</summary>
    public string EchoText(int index, Tokenization.HfTokenizer? tokenizer)
        => PromptTexts[index] ?? tokenizer?.Decode(Prompts[index].ToArray()) ?? string.Empty;

    /// <summary>The shared generation settings.</summary>
    public required GenerationSettings Settings { get; init; }

    /// <summary>OpenAI's <c>echo</c>: each choice's text starts with its prompt.</summary>
    public bool Echo { get; init; }

    /// <summary>Completions per prompt.</summary>
    public int N => Settings.N;

    /// <summary>Whether to stream Server-Sent Events.</summary>
    public bool Stream => Settings.Stream;

    /// <summary>Whether the stream ends with a usage chunk.</summary>
    public bool IncludeUsage => Settings.IncludeUsage;

    /// <summary>vLLM's <c>return_token_ids</c>: add <c>prompt_token_ids</c> and <c>token_ids</c> to each choice.</summary>
    public bool ReturnTokenIds => Settings.ReturnTokenIds;

    /// <summary>Parses and validates <paramref name="body"/> against <paramref name="model"/>.</summary>
    public static CompletionRequest Parse(JsonElement body, ServedModel model)
    {
        var reader = new JsonRequestReader(body);
        TokenizeEndpoint.CheckModel(reader, model);
        if (!reader.TryGet("prompt", out var promptElement))
        {
            throw new RequestValidationException("prompt", "'prompt' is required.");
        }

        var texts = new List<string?>();
        var prompts = ReadPrompts(promptElement, model, texts);
        var longestPrompt = 0;
        foreach (var prompt in prompts)
        {
            longestPrompt = Math.Max(longestPrompt, prompt.Count);
        }

        if (reader.TryGet("suffix", out _))
        {
            throw new RequestValidationException("suffix", "'suffix' is not supported.");
        }

        // OpenAI's legacy logprobs: an integer count of alternatives (false and null mean none; true means 0 here).
        int? logprobs = null;
        if (reader.TryGet("logprobs", out var logprobsElement))
        {
            logprobs = logprobsElement.ValueKind switch
            {
                JsonValueKind.False => null,
                JsonValueKind.True => 0,
                _ => (int)JsonRequestReader.ToInteger(logprobsElement, "logprobs", 0, GenerationSettings.MaxLogprobs),
            };
        }

        var echo = reader.Bool("echo") ?? false;
        var context = model.Spec.ContextLength;

        // Without max_tokens, OpenAI's default of 16, shortened to what the context leaves.
        var settings = GenerationSettings.Read(reader, model, longestPrompt, Math.Clamp(context - longestPrompt, 1, DefaultMaxTokens), "max_tokens", logprobs, echo ? logprobs : null);
        if (echo && model.Tokenizer is null)
        {
            throw new RequestValidationException("echo", $"'echo' needs the prompt as text, and the model '{model.Name}' has no tokenizer.");
        }

        return new CompletionRequest { Prompts = prompts, PromptTexts = texts, Settings = settings, Echo = echo };
    }

    private static List<IReadOnlyList<int>> ReadPrompts(JsonElement prompt, ServedModel model, List<string?> texts)
    {
        var prompts = new List<IReadOnlyList<int>>();
        switch (prompt.ValueKind)
        {
            case JsonValueKind.String:
                prompts.Add(Tokenize(prompt.GetString()!, model));
                texts.Add(prompt.GetString());
                break;
            case JsonValueKind.Array when prompt.GetArrayLength() == 0:
                throw new RequestValidationException("prompt", "'prompt' must not be empty.");
            case JsonValueKind.Array when prompt[0].ValueKind == JsonValueKind.Number:
                prompts.Add(ReadTokenIds(prompt, model));
                texts.Add(null);
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
                    texts.Add(item.ValueKind == JsonValueKind.String ? item.GetString() : null);
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
