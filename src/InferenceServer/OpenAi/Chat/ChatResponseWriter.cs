// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers;
using System.Text;
using System.Text.Json;
using InferenceServer.Engine;
using InferenceServer.Engine.Requests;
using InferenceServer.OpenAi.ToolCalls;
using InferenceServer.Serving;
using InferenceServer.Tokenization;

namespace InferenceServer.OpenAi.Chat;

/// <summary>
/// Writes <c>chat.completion</c> and <c>chat.completion.chunk</c> objects: the assistant message (content, tool calls),
/// OpenAI's chat logprobs (<c>logprobs.content[]</c> with <c>token</c>, <c>logprob</c>, <c>bytes</c>,
/// <c>top_logprobs</c>), and usage. While streaming with tools, text that may be the start of a tool call is held back
/// until it is known to be content; tool calls go out whole, in one delta, when the choice ends.
/// </summary>
internal sealed class ChatResponseWriter : IResponseWriter
{
    private readonly string _id;
    private readonly long _created;
    private readonly string _model;
    private readonly HfTokenizer? _tokenizer;
    private readonly ChatCompletionRequest _request;
    private readonly StringBuilder[]? _texts;
    private readonly ToolCallStreamFilter[]? _filters;

    /// <summary>Creates the writer for one response.</summary>
    public ChatResponseWriter(string id, long created, ServedModel model, ChatCompletionRequest request)
    {
        _id = id;
        _created = created;
        _model = model.Name;
        _tokenizer = model.Tokenizer;
        _request = request;
        if (request.ToolParser is not null || request.ToolChoice.IsConstrained)
        {
            // Only a choice that may hold tool calls keeps its text: to hold back what may start a call, and to parse at the end.
            _texts = new StringBuilder[request.Settings.N];
            for (var i = 0; i < _texts.Length; i++)
            {
                _texts[i] = new StringBuilder();
            }
        }

        if (request.ToolParser is { } parser)
        {
            _filters = new ToolCallStreamFilter[request.Settings.N];
            for (var i = 0; i < _filters.Length; i++)
            {
                _filters[i] = new ToolCallStreamFilter(parser, request.Tools?.Names);
            }
        }
    }

    /// <inheritdoc />
    public GenerationSettings Settings => _request.Settings;

    /// <inheritdoc />
    public int PromptIndex(int choice) => 0;

    /// <inheritdoc />
    public void WriteComplete(IBufferWriter<byte> output, IReadOnlyList<ChoiceResult> choices)
    {
        using var writer = new Utf8JsonWriter(output, JsonOutput.Options);
        WriteHeader(writer, "chat.completion");
        writer.WriteStartArray("choices");
        var usage = new UsageCounter();
        for (var i = 0; i < choices.Count; i++)
        {
            var choice = choices[i];
            usage.Add(choice.Final, 0);
            var (content, calls) = Split(choice.Text);
            writer.WriteStartObject();
            writer.WriteNumber("index", i);
            writer.WriteStartObject("message");
            writer.WriteString("role", "assistant");
            writer.WriteString("content", content);
            writer.WriteNull("refusal");
            if (calls.Count > 0)
            {
                WriteToolCalls(writer, calls, withIndex: false);
            }

            writer.WriteEndObject();
            if (Settings.WantsLogprobs)
            {
                writer.WriteStartObject("logprobs");
                writer.WriteStartArray("content");
                foreach (var token in choice.Logprobs)
                {
                    WriteLogprob(writer, token);
                }

                writer.WriteEndArray();
                writer.WriteNull("refusal");
                writer.WriteEndObject();
            }
            else
            {
                writer.WriteNull("logprobs");
            }

            writer.WriteString("finish_reason", FinishReason(choice.Final.Finish, calls.Count > 0));
            if (Settings.ReturnTokenIds)
            {
                CompletionResponseWriter.WriteIds(writer, "token_ids", choice.TokenIds);
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        CompletionResponseWriter.WriteUsage(writer, usage);
        if (Settings.ReturnTokenIds)
        {
            CompletionResponseWriter.WriteIds(writer, "prompt_token_ids", _request.Prompt);
        }

        writer.WriteEndObject();
    }

    /// <inheritdoc />
    public void WriteEvents(IBufferWriter<byte> output, int index, GenerationUpdate update, bool first)
    {
        if (first)
        {
            // OpenAI opens each choice with the role.
            WriteChunk(output, index, static (w, _) => { w.WriteString("role", "assistant"); w.WriteString("content", string.Empty); }, 0, null, null, first && Settings.ReturnTokenIds);
        }

        // Free text streams as it comes; with a tool parser, only what is certainly not the start of a call; under a
        // constrained tool choice, nothing until the end.
        var text = _texts?[index].Append(update.Text);
        var piece = text is null
            ? update.Text
            : _filters is { } filters && !update.IsFinal ? filters[index].NextContent(text.ToString()).ToString() : string.Empty;
        if (piece.Length > 0 || update.Logprobs is not null || (Settings.ReturnTokenIds && update.TokenId >= 0))
        {
            WriteChunk(output, index, static (w, p) => w.WriteString("content", p), piece, update.Logprobs, null, false, update.TokenId);
        }

        if (!update.IsFinal)
        {
            return;
        }

        var hasCalls = false;
        if (text is not null)
        {
            var all = text.ToString();
            string? rest;
            IReadOnlyList<ParsedToolCall> calls;
            if (_filters is { } done)
            {
                calls = done[index].Complete(all, out rest).ToolCalls;
            }
            else
            {
                (rest, calls) = Split(all);
            }

            if (!string.IsNullOrEmpty(rest))
            {
                WriteChunk(output, index, static (w, p) => w.WriteString("content", p), rest, null, null, false);
            }

            if (calls.Count > 0)
            {
                hasCalls = true;
                WriteChunk(output, index, static (w, c) => WriteToolCalls(w, c, withIndex: true), calls, null, null, false);
            }
        }

        WriteChunk(output, index, static (_, _) => { }, 0, null, FinishReason(update.Finish, hasCalls), false);
    }

    /// <inheritdoc />
    public void WriteUsageEvent(IBufferWriter<byte> output, UsageCounter usage)
    {
        SseEvents.Begin(output);
        using (var writer = new Utf8JsonWriter(output, JsonOutput.Options))
        {
            WriteHeader(writer, "chat.completion.chunk");
            writer.WriteStartArray("choices");
            writer.WriteEndArray();
            CompletionResponseWriter.WriteUsage(writer, usage);
            writer.WriteEndObject();
        }

        SseEvents.End(output);
    }

    private (string? Content, IReadOnlyList<ParsedToolCall> Calls) Split(string text) => _request.SplitToolCalls(text);

    // As OpenAI: "tool_calls" when the model called tools, but "stop" when the request named the function to call.
    private string FinishReason(Engine.Requests.FinishReason reason, bool hasCalls) => hasCalls
        ? (_request.ToolChoice.Mode == ToolChoiceMode.Function ? "stop" : "tool_calls")
        : CompletionResponseWriter.FinishReasonName(reason);

    private void WriteChunk<TState>(IBufferWriter<byte> output, int index, Action<Utf8JsonWriter, TState> delta, TState state, TokenLogprobs? logprobs, string? finish, bool promptIds, int tokenId = -1)
    {
        SseEvents.Begin(output);
        using (var writer = new Utf8JsonWriter(output, JsonOutput.Options))
        {
            WriteHeader(writer, "chat.completion.chunk");
            writer.WriteStartArray("choices");
            writer.WriteStartObject();
            writer.WriteNumber("index", index);
            writer.WriteStartObject("delta");
            delta(writer, state);
            writer.WriteEndObject();
            if (logprobs is not null)
            {
                writer.WriteStartObject("logprobs");
                writer.WriteStartArray("content");
                WriteLogprob(writer, logprobs);
                writer.WriteEndArray();
                writer.WriteNull("refusal");
                writer.WriteEndObject();
            }
            else
            {
                writer.WriteNull("logprobs");
            }

            if (finish is null)
            {
                writer.WriteNull("finish_reason");
            }
            else
            {
                writer.WriteString("finish_reason", finish);
            }

            if (Settings.ReturnTokenIds)
            {
                if (promptIds)
                {
                    CompletionResponseWriter.WriteIds(writer, "prompt_token_ids", _request.Prompt);
                }

                writer.WriteStartArray("token_ids");
                if (tokenId >= 0)
                {
                    writer.WriteNumberValue(tokenId);
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
            writer.WriteEndArray();
            if (Settings.IncludeUsage)
            {
                writer.WriteNull("usage");
            }

            writer.WriteEndObject();
        }

        SseEvents.End(output);
    }

    private static void WriteToolCalls(Utf8JsonWriter writer, IReadOnlyList<ParsedToolCall> calls, bool withIndex)
    {
        writer.WriteStartArray("tool_calls");
        for (var i = 0; i < calls.Count; i++)
        {
            writer.WriteStartObject();
            if (withIndex)
            {
                writer.WriteNumber("index", i);
            }

            writer.WriteString("id", calls[i].Id);
            writer.WriteString("type", "function");
            writer.WriteStartObject("function");
            writer.WriteString("name", calls[i].Name);
            writer.WriteString("arguments", calls[i].ArgumentsJson);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    private void WriteLogprob(Utf8JsonWriter writer, TokenLogprobs token)
    {
        writer.WriteStartObject();
        WriteTokenFields(writer, token.TokenId, token.Logprob);
        writer.WriteStartArray("top_logprobs");
        foreach (var candidate in token.Top)
        {
            writer.WriteStartObject();
            WriteTokenFields(writer, candidate.TokenId, candidate.Logprob);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    private void WriteTokenFields(Utf8JsonWriter writer, int id, float logprob)
    {
        writer.WriteString("token", TokenText.Of(_tokenizer, id));
        writer.WriteNumber("logprob", logprob);
        writer.WriteStartArray("bytes");
        foreach (var b in TokenText.Bytes(_tokenizer, id))
        {
            writer.WriteNumberValue(b);
        }

        writer.WriteEndArray();
    }

    private void WriteHeader(Utf8JsonWriter writer, string objectName)
    {
        writer.WriteStartObject();
        writer.WriteString("id", _id);
        writer.WriteString("object", objectName);
        writer.WriteNumber("created", _created);
        writer.WriteString("model", _model);
    }
}
