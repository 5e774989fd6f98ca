// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers;
using System.Text.Json;
using InferenceServer.Engine;
using InferenceServer.Engine.Requests;
using InferenceServer.Serving;
using InferenceServer.Tokenization;

namespace InferenceServer.OpenAi;

/// <summary>
/// Writes <c>text_completion</c> objects: whole responses, stream chunks and the usage chunk, with OpenAI's legacy
/// logprobs (<c>tokens</c>, <c>token_logprobs</c>, <c>top_logprobs</c>, <c>text_offset</c>) and <c>echo</c>.
/// </summary>
internal sealed class CompletionResponseWriter : IResponseWriter
{
    private readonly string _id;
    private readonly long _created;
    private readonly string _model;
    private readonly HfTokenizer? _tokenizer;
    private readonly int[] _textOffsets;

    /// <summary>Creates the writer for one response.</summary>
    public CompletionResponseWriter(string id, long created, ServedModel model, CompletionRequest request)
    {
        _id = id;
        _created = created;
        _model = model.Name;
        _tokenizer = model.Tokenizer;
        Request = request;
        _textOffsets = new int[checked(request.Prompts.Count * request.N)];
    }

    /// <summary>The request being answered.</summary>
    public CompletionRequest Request { get; }

    /// <inheritdoc />
    public GenerationSettings Settings => Request.Settings;

    /// <inheritdoc />
    public int PromptIndex(int choice) => choice / Request.N;

    /// <inheritdoc />
    public void WriteComplete(IBufferWriter<byte> output, IReadOnlyList<ChoiceResult> choices)
    {
        using var writer = new Utf8JsonWriter(output, JsonOutput.Options);
        WriteHeader(writer);
        writer.WriteStartArray("choices");
        var usage = new UsageCounter();
        for (var i = 0; i < choices.Count; i++)
        {
            var choice = choices[i];
            var prompt = PromptIndex(i);
            usage.Add(choice.Final, prompt);
            var echo = Request.Echo ? Request.EchoText(prompt, _tokenizer) : string.Empty;
            writer.WriteStartObject();
            writer.WriteNumber("index", i);
            writer.WriteString("text", echo + choice.Text);
            if (Settings.WantsLogprobs)
            {
                var logprobs = new LegacyLogprobs();
                if (Request.Echo)
                {
                    logprobs.AddPrompt(Request.Prompts[prompt], choice.PromptLogprobs, _tokenizer);
                }

                foreach (var token in choice.Logprobs)
                {
                    logprobs.Add(token, _tokenizer);
                }

                logprobs.Write(writer, 0);
            }
            else
            {
                writer.WriteNull("logprobs");
            }

            writer.WriteString("finish_reason", FinishReasonName(choice.Final.Finish));
            if (Request.ReturnTokenIds)
            {
                WriteIds(writer, "prompt_token_ids", Request.Prompts[prompt]);
                WriteIds(writer, "token_ids", choice.TokenIds);
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        WriteUsage(writer, usage);
        writer.WriteEndObject();
    }

    /// <inheritdoc />
    public void WriteEvents(IBufferWriter<byte> output, int index, GenerationUpdate update, bool first)
    {
        var echo = first && Request.Echo;
        if (!update.IsFinal && update.Text.Length == 0 && !Request.ReturnTokenIds && update.Logprobs is null && !echo)
        {
            return;
        }

        var prompt = PromptIndex(index);
        var text = echo ? Request.EchoText(prompt, _tokenizer) + update.Text : update.Text;
        SseEvents.Begin(output);
        using (var writer = new Utf8JsonWriter(output, JsonOutput.Options))
        {
            WriteHeader(writer);
            writer.WriteStartArray("choices");
            writer.WriteStartObject();
            writer.WriteNumber("index", index);
            writer.WriteString("text", text);
            if (Settings.WantsLogprobs && (update.Logprobs is not null || echo))
            {
                var logprobs = new LegacyLogprobs();
                if (echo)
                {
                    logprobs.AddPrompt(Request.Prompts[prompt], update.PromptLogprobs, _tokenizer);
                }

                if (update.Logprobs is { } token)
                {
                    logprobs.Add(token, _tokenizer);
                }

                _textOffsets[index] = logprobs.Write(writer, _textOffsets[index]);
            }
            else
            {
                writer.WriteNull("logprobs");
            }

            if (update.IsFinal)
            {
                writer.WriteString("finish_reason", FinishReasonName(update.Finish));
            }
            else
            {
                writer.WriteNull("finish_reason");
            }

            if (Request.ReturnTokenIds)
            {
                if (first)
                {
                    WriteIds(writer, "prompt_token_ids", Request.Prompts[prompt]);
                }

                writer.WriteStartArray("token_ids");
                if (update.TokenId >= 0)
                {
                    writer.WriteNumberValue(update.TokenId);
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
            writer.WriteEndArray();
            if (Request.IncludeUsage)
            {
                writer.WriteNull("usage");
            }

            writer.WriteEndObject();
        }

        SseEvents.End(output);
    }

    /// <inheritdoc />
    public void WriteUsageEvent(IBufferWriter<byte> output, UsageCounter usage)
    {
        SseEvents.Begin(output);
        using (var writer = new Utf8JsonWriter(output, JsonOutput.Options))
        {
            WriteHeader(writer);
            writer.WriteStartArray("choices");
            writer.WriteEndArray();
            WriteUsage(writer, usage);
            writer.WriteEndObject();
        }

        SseEvents.End(output);
    }

    /// <summary>OpenAI's name for <paramref name="reason"/>.</summary>
    public static string FinishReasonName(FinishReason reason) => reason switch
    {
        FinishReason.Stop => "stop",
        FinishReason.Length => "length",
        FinishReason.Cancelled => "abort",
        FinishReason.Error => "error",
        _ => "null",
    };

    /// <summary>Writes OpenAI's <c>usage</c> object with <c>prompt_tokens_details.cached_tokens</c>.</summary>
    public static void WriteUsage(Utf8JsonWriter writer, UsageCounter usage)
    {
        writer.WriteStartObject("usage");
        writer.WriteNumber("prompt_tokens", usage.PromptTokens);
        writer.WriteNumber("completion_tokens", usage.CompletionTokens);
        writer.WriteNumber("total_tokens", (long)usage.PromptTokens + usage.CompletionTokens);
        writer.WriteStartObject("prompt_tokens_details");
        writer.WriteNumber("cached_tokens", usage.CachedTokens);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    /// <summary>Writes an array of token ids.</summary>
    public static void WriteIds(Utf8JsonWriter writer, string name, IReadOnlyList<int> ids)
    {
        writer.WriteStartArray(name);
        foreach (var id in ids)
        {
            writer.WriteNumberValue(id);
        }

        writer.WriteEndArray();
    }

    private void WriteHeader(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("id", _id);
        writer.WriteString("object", "text_completion");
        writer.WriteNumber("created", _created);
        writer.WriteString("model", _model);
    }
}
