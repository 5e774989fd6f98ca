// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers;
using System.Text.Json;
using InferenceServer.Engine.Requests;

namespace InferenceServer.OpenAi;

/// <summary>Writes <c>text_completion</c> objects: whole responses, stream chunks and the usage chunk.</summary>
internal sealed class CompletionResponseWriter
{
    private readonly string _id;
    private readonly long _created;
    private readonly string _model;

    /// <summary>Creates the writer for one response.</summary>
    public CompletionResponseWriter(string id, long created, string model, CompletionRequest request)
    {
        _id = id;
        _created = created;
        _model = model;
        Request = request;
    }

    /// <summary>The request being answered.</summary>
    public CompletionRequest Request { get; }

    /// <summary>The prompt behind choice <paramref name="choice"/>.</summary>
    public int PromptIndex(int choice) => choice / Request.N;

    /// <summary>Writes the non-streamed response.</summary>
    public void WriteComplete(IBufferWriter<byte> output, IReadOnlyList<ChoiceResult> choices)
    {
        using var writer = new Utf8JsonWriter(output, JsonOutput.Options);
        WriteHeader(writer);
        writer.WriteStartArray("choices");
        var usage = new UsageCounter();
        for (var i = 0; i < choices.Count; i++)
        {
            var choice = choices[i];
            usage.Add(choice.Final, PromptIndex(i));
            writer.WriteStartObject();
            writer.WriteNumber("index", i);
            writer.WriteString("text", choice.Text);
            writer.WriteNull("logprobs");
            writer.WriteString("finish_reason", FinishReasonName(choice.Final.Finish));
            if (Request.ReturnTokenIds)
            {
                WriteIds(writer, "prompt_token_ids", Request.Prompts[PromptIndex(i)]);
                WriteIds(writer, "token_ids", choice.TokenIds);
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        WriteUsage(writer, usage);
        writer.WriteEndObject();
    }

    /// <summary>Writes one stream chunk for choice <paramref name="index"/>.</summary>
    public void WriteChunk(IBufferWriter<byte> output, int index, GenerationUpdate update, bool includePrompt)
    {
        using var writer = new Utf8JsonWriter(output, JsonOutput.Options);
        WriteHeader(writer);
        writer.WriteStartArray("choices");
        writer.WriteStartObject();
        writer.WriteNumber("index", index);
        writer.WriteString("text", update.Text);
        writer.WriteNull("logprobs");
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
            if (includePrompt)
            {
                WriteIds(writer, "prompt_token_ids", Request.Prompts[PromptIndex(index)]);
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

    /// <summary>Writes the final usage chunk of a stream (<c>stream_options.include_usage</c>).</summary>
    public void WriteUsageChunk(IBufferWriter<byte> output, UsageCounter usage)
    {
        using var writer = new Utf8JsonWriter(output, JsonOutput.Options);
        WriteHeader(writer);
        writer.WriteStartArray("choices");
        writer.WriteEndArray();
        WriteUsage(writer, usage);
        writer.WriteEndObject();
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

    private void WriteHeader(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("id", _id);
        writer.WriteString("object", "text_completion");
        writer.WriteNumber("created", _created);
        writer.WriteString("model", _model);
    }

    private static void WriteUsage(Utf8JsonWriter writer, UsageCounter usage)
    {
        writer.WriteStartObject("usage");
        writer.WriteNumber("prompt_tokens", usage.PromptTokens);
        writer.WriteNumber("completion_tokens", usage.CompletionTokens);
        writer.WriteNumber("total_tokens", usage.PromptTokens + usage.CompletionTokens);
        writer.WriteStartObject("prompt_tokens_details");
        writer.WriteNumber("cached_tokens", usage.CachedTokens);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    private static void WriteIds(Utf8JsonWriter writer, string name, IReadOnlyList<int> ids)
    {
        writer.WriteStartArray(name);
        foreach (var id in ids)
        {
            writer.WriteNumberValue(id);
        }

        writer.WriteEndArray();
    }
}
