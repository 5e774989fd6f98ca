// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers;
using System.Text;
using System.Text.Json;
using InferenceServer.Engine.Requests;
using InferenceServer.OpenAi.ToolCalls;
using InferenceServer.Serving;

namespace InferenceServer.OpenAi.Responses;

/// <summary>
/// Writes the Responses API's <c>response</c> object and, when streaming, its named events in order, each with a
/// <c>sequence_number</c>: <c>response.created</c>, <c>response.in_progress</c>, for the assistant message
/// <c>response.output_item.added</c>, <c>response.content_part.added</c>, <c>response.output_text.delta</c> (one per
/// released piece of text), <c>response.output_text.done</c>, <c>response.content_part.done</c>,
/// <c>response.output_item.done</c>; for each function call <c>response.output_item.added</c>,
/// <c>response.function_call_arguments.delta</c> (the whole arguments), <c>response.function_call_arguments.done</c>,
/// <c>response.output_item.done</c>; then <c>response.completed</c>, or <c>response.incomplete</c> when
/// <c>max_output_tokens</c> cut the output. With tools, text that may start a call is held back as on chat completions.
/// </summary>
internal sealed class ResponsesResponseWriter : IResponseWriter
{
    private readonly string _id;
    private readonly long _createdAt;
    private readonly string _model;
    private readonly ResponsesRequest _request;
    private readonly StringBuilder _text = new();
    private readonly StringBuilder _content = new();
    private readonly ToolCallStreamFilter? _filter;
    private readonly bool _holdsText;
    private bool _messageOpen;
    private int _sequence;

    /// <summary>Creates the writer for one response, whose id is <c>resp_</c> and <paramref name="requestId"/>.</summary>
    public ResponsesResponseWriter(string requestId, long createdAt, string model, ResponsesRequest request)
    {
        _id = "resp_" + requestId;
        _createdAt = createdAt;
        _model = model;
        _request = request;
        var chat = request.Chat;
        _holdsText = chat.ToolParser is not null || chat.ToolChoice.IsConstrained;
        if (chat.ToolParser is { } parser)
        {
            _filter = new ToolCallStreamFilter(parser, chat.Tools?.Names);
        }
    }

    /// <summary>The message output item's id.</summary>
    private string MessageId => "msg_" + _id[5..];

    /// <inheritdoc />
    public GenerationSettings Settings => _request.Chat.Settings;

    /// <inheritdoc />
    public int PromptIndex(int choice) => 0;

    /// <inheritdoc />
    public void WriteComplete(IBufferWriter<byte> output, IReadOnlyList<ChoiceResult> choices)
    {
        var choice = choices[0];
        var (content, calls) = _request.Chat.SplitToolCalls(choice.Text);
        using var writer = new Utf8JsonWriter(output, JsonOutput.Options);
        WriteResponse(writer, choice.Final, content, calls);
    }

    /// <inheritdoc />
    public void WriteEvents(IBufferWriter<byte> output, int index, GenerationUpdate update, bool first)
    {
        if (first)
        {
            WriteResponseEvent(output, "response.created"u8, "response.created", null);
            WriteResponseEvent(output, "response.in_progress"u8, "response.in_progress", null);
            if (!_holdsText)
            {
                OpenMessage(output);
            }
        }

        if (!_holdsText)
        {
            WriteDelta(output, update.Text);
        }
        else
        {
            _text.Append(update.Text);
            if (_filter is not null && !update.IsFinal)
            {
                WriteDelta(output, _filter.NextContent(_text.ToString()).ToString());
            }
        }

        if (update.IsFinal)
        {
            Finish(output, update);
        }
    }

    /// <summary>No separate usage event: <c>response.completed</c> carries the usage.</summary>
    public void WriteUsageEvent(IBufferWriter<byte> output, UsageCounter usage)
    {
    }

    /// <summary>The stream ends with <c>response.completed</c> (or <c>response.incomplete</c>): no <c>[DONE]</c>.</summary>
    public void WriteStreamEnd(IBufferWriter<byte> output, UsageCounter usage)
    {
    }

    /// <summary>A failure mid-stream is the Responses API's <c>error</c> event.</summary>
    public void WriteStreamError(IBufferWriter<byte> output, string message, string type, string code)
        => WriteEvent(output, "error"u8, "error", static (w, s) =>
        {
            w.WriteString("code", s.Code);
            w.WriteString("message", s.Message);
            w.WriteNull("param");
        }, (Code: code, Message: message));

    private void Finish(IBufferWriter<byte> output, GenerationUpdate final)
    {
        IReadOnlyList<ParsedToolCall> calls = [];
        if (_holdsText)
        {
            string? rest;
            if (_filter is not null)
            {
                calls = _filter.Complete(_text.ToString(), out rest).ToolCalls;
            }
            else
            {
                (rest, calls) = _request.Chat.SplitToolCalls(_text.ToString());
            }

            WriteDelta(output, rest);
        }

        var outputIndex = 0;
        if (_messageOpen || calls.Count == 0)
        {
            OpenMessage(output);
            var text = _content.ToString();
            WriteEvent(output, "response.output_text.done"u8, "response.output_text.done", static (w, s) => WriteTextEvent(w, s.Self.MessageId, "text", s.Text), (Self: this, Text: text));
            WriteEvent(output, "response.content_part.done"u8, "response.content_part.done", static (w, s) =>
            {
                WriteItemRef(w, s.Self.MessageId, 0);
                w.WriteNumber("content_index", 0);
                w.WritePropertyName("part");
                WriteOutputText(w, s.Text);
            }, (Self: this, Text: text));
            WriteEvent(output, "response.output_item.done"u8, "response.output_item.done", static (w, s) =>
            {
                w.WriteNumber("output_index", 0);
                w.WritePropertyName("item");
                s.Self.WriteMessageItem(w, s.Text, ItemStatus(s.Final));
            }, (Self: this, Text: text, Final: final));
            outputIndex = 1;
        }

        for (var i = 0; i < calls.Count; i++, outputIndex++)
        {
            var state = (Self: this, Call: calls[i], Index: outputIndex, ItemId: CallItemId(i));
            WriteEvent(output, "response.output_item.added"u8, "response.output_item.added", static (w, s) =>
            {
                w.WriteNumber("output_index", s.Index);
                w.WritePropertyName("item");
                WriteCallItem(w, s.ItemId, s.Call, string.Empty, "in_progress");
            }, state);
            WriteEvent(output, "response.function_call_arguments.delta"u8, "response.function_call_arguments.delta", static (w, s) =>
            {
                WriteItemRef(w, s.ItemId, s.Index);
                w.WriteString("delta", s.Call.ArgumentsJson);
            }, state);
            WriteEvent(output, "response.function_call_arguments.done"u8, "response.function_call_arguments.done", static (w, s) =>
            {
                WriteItemRef(w, s.ItemId, s.Index);
                w.WriteString("name", s.Call.Name);
                w.WriteString("arguments", s.Call.ArgumentsJson);
            }, state);
            WriteEvent(output, "response.output_item.done"u8, "response.output_item.done", static (w, s) =>
            {
                w.WriteNumber("output_index", s.Index);
                w.WritePropertyName("item");
                WriteCallItem(w, s.ItemId, s.Call, s.Call.ArgumentsJson, "completed");
            }, state);
        }

        var content = _messageOpen ? _content.ToString() : null;
        var incomplete = final.Finish == FinishReason.Length;
        WriteEvent(
            output,
            incomplete ? "response.incomplete"u8 : "response.completed"u8,
            incomplete ? "response.incomplete" : "response.completed",
            static (w, s) =>
            {
                w.WritePropertyName("response");
                s.Self.WriteResponse(w, s.Final, s.Content, s.Calls);
            },
            (Self: this, Final: (GenerationUpdate?)final, Content: content, Calls: calls));
    }

    private void OpenMessage(IBufferWriter<byte> output)
    {
        if (_messageOpen)
        {
            return;
        }

        _messageOpen = true;
        WriteEvent(output, "response.output_item.added"u8, "response.output_item.added", static (w, self) =>
        {
            w.WriteNumber("output_index", 0);
            w.WriteStartObject("item");
            w.WriteString("id", self.MessageId);
            w.WriteString("type", "message");
            w.WriteString("status", "in_progress");
            w.WriteString("role", "assistant");
            w.WriteStartArray("content");
            w.WriteEndArray();
            w.WriteEndObject();
        }, this);
        WriteEvent(output, "response.content_part.added"u8, "response.content_part.added", static (w, self) =>
        {
            WriteItemRef(w, self.MessageId, 0);
            w.WriteNumber("content_index", 0);
            w.WritePropertyName("part");
            WriteOutputText(w, string.Empty);
        }, this);
    }

    private void WriteDelta(IBufferWriter<byte> output, string? piece)
    {
        if (string.IsNullOrEmpty(piece))
        {
            return;
        }

        OpenMessage(output);
        _content.Append(piece);
        WriteEvent(output, "response.output_text.delta"u8, "response.output_text.delta", static (w, s) => WriteTextEvent(w, s.Self.MessageId, "delta", s.Piece), (Self: this, Piece: piece));
    }

    private void WriteResponseEvent(IBufferWriter<byte> output, ReadOnlySpan<byte> name, string type, GenerationUpdate? final)
        => WriteEvent(output, name, type, static (w, s) =>
        {
            w.WritePropertyName("response");
            s.Self.WriteResponse(w, s.Final, null, []);
        }, (Self: this, Final: final));

    /// <summary>Writes one named event: <c>{"type", "sequence_number", ...}</c>, the rest written by <paramref name="body"/>.</summary>
    private void WriteEvent<TState>(IBufferWriter<byte> output, ReadOnlySpan<byte> name, string type, Action<Utf8JsonWriter, TState> body, TState state)
    {
        SseEvents.Begin(output, name);
        using (var writer = new Utf8JsonWriter(output, JsonOutput.Options))
        {
            writer.WriteStartObject();
            writer.WriteString("type", type);
            writer.WriteNumber("sequence_number", _sequence++);
            body(writer, state);
            writer.WriteEndObject();
        }

        SseEvents.End(output);
    }

    /// <summary>
    /// The <c>response</c> object; <paramref name="final"/> null while in progress (no output, no usage yet).
    /// <paramref name="content"/> null means no message item.
    /// </summary>
    private void WriteResponse(Utf8JsonWriter writer, GenerationUpdate? final, string? content, IReadOnlyList<ParsedToolCall> calls)
    {
        var settings = Settings;
        writer.WriteStartObject();
        writer.WriteString("id", _id);
        writer.WriteString("object", "response");
        writer.WriteNumber("created_at", _createdAt);
        var incomplete = final is { Finish: FinishReason.Length };
        writer.WriteString("status", final is null ? "in_progress" : incomplete ? "incomplete" : "completed");
        writer.WriteBoolean("background", false);
        writer.WriteNull("error");
        if (incomplete)
        {
            writer.WriteStartObject("incomplete_details");
            writer.WriteString("reason", "max_output_tokens");
            writer.WriteEndObject();
        }
        else
        {
            writer.WriteNull("incomplete_details");
        }

        WriteNullableString(writer, "instructions", _request.Instructions);
        if (_request.MaxOutputTokens is { } max)
        {
            writer.WriteNumber("max_output_tokens", max);
        }
        else
        {
            writer.WriteNull("max_output_tokens");
        }

        writer.WriteString("model", _model);
        writer.WriteStartArray("output");
        if (final is { } done)
        {
            if (content is not null || calls.Count == 0)
            {
                WriteMessageItem(writer, content ?? string.Empty, ItemStatus(done));
            }

            for (var i = 0; i < calls.Count; i++)
            {
                WriteCallItem(writer, CallItemId(i), calls[i], calls[i].ArgumentsJson, "completed");
            }
        }

        writer.WriteEndArray();
        writer.WriteBoolean("parallel_tool_calls", _request.ParallelToolCalls);
        writer.WriteNull("previous_response_id");
        writer.WriteStartObject("reasoning");
        writer.WriteNull("effort");
        writer.WriteNull("summary");
        writer.WriteEndObject();
        writer.WriteBoolean("store", _request.Store);
        writer.WriteNumber("temperature", settings.Sampling.Temperature);
        writer.WriteNumber("top_p", settings.Sampling.TopP);
        WriteRaw(writer, "text", _request.TextJson, """{"format":{"type":"text"}}""");
        WriteRaw(writer, "tool_choice", _request.ToolChoiceJson, _request.Chat.Tools is null ? "\"none\"" : "\"auto\"");
        WriteRaw(writer, "tools", _request.ToolsJson, "[]");
        writer.WriteString("truncation", "disabled");
        WriteNullableString(writer, "user", _request.User);
        WriteRaw(writer, "metadata", _request.MetadataJson, "{}");
        if (final is { } last)
        {
            writer.WriteStartObject("usage");
            writer.WriteNumber("input_tokens", last.PromptTokens);
            writer.WriteStartObject("input_tokens_details");
            writer.WriteNumber("cached_tokens", last.CachedPromptTokens);
            writer.WriteEndObject();
            writer.WriteNumber("output_tokens", last.CompletionTokens);
            writer.WriteStartObject("output_tokens_details");
            writer.WriteNumber("reasoning_tokens", 0);
            writer.WriteEndObject();
            writer.WriteNumber("total_tokens", last.PromptTokens + last.CompletionTokens);
            writer.WriteEndObject();
        }
        else
        {
            writer.WriteNull("usage");
        }

        writer.WriteEndObject();
    }

    private void WriteMessageItem(Utf8JsonWriter writer, string text, string status)
    {
        writer.WriteStartObject();
        writer.WriteString("id", MessageId);
        writer.WriteString("type", "message");
        writer.WriteString("status", status);
        writer.WriteString("role", "assistant");
        writer.WriteStartArray("content");
        WriteOutputText(writer, text);
        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    private static void WriteCallItem(Utf8JsonWriter writer, string itemId, ParsedToolCall call, string arguments, string status)
    {
        writer.WriteStartObject();
        writer.WriteString("id", itemId);
        writer.WriteString("type", "function_call");
        writer.WriteString("status", status);
        writer.WriteString("call_id", call.Id);
        writer.WriteString("name", call.Name);
        writer.WriteString("arguments", arguments);
        writer.WriteEndObject();
    }

    private static void WriteOutputText(Utf8JsonWriter writer, string text)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "output_text");
        writer.WriteString("text", text);
        writer.WriteStartArray("annotations");
        writer.WriteEndArray();
        writer.WriteStartArray("logprobs");
        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    /// <summary>The body of <c>response.output_text.delta</c> and <c>.done</c>: the message's text part, the text, no logprobs.</summary>
    private static void WriteTextEvent(Utf8JsonWriter writer, string itemId, string name, string text)
    {
        WriteItemRef(writer, itemId, 0);
        writer.WriteNumber("content_index", 0);
        writer.WriteString(name, text);
        writer.WriteStartArray("logprobs");
        writer.WriteEndArray();
    }

    private static void WriteItemRef(Utf8JsonWriter writer, string itemId, int outputIndex)
    {
        writer.WriteString("item_id", itemId);
        writer.WriteNumber("output_index", outputIndex);
    }

    private static void WriteRaw(Utf8JsonWriter writer, string name, string? json, string fallback)
    {
        writer.WritePropertyName(name);
        writer.WriteRawValue(json ?? fallback, skipInputValidation: true);
    }

    private static void WriteNullableString(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is null)
        {
            writer.WriteNull(name);
        }
        else
        {
            writer.WriteString(name, value);
        }
    }

    private static string ItemStatus(GenerationUpdate final) => final.Finish == FinishReason.Length ? "incomplete" : "completed";

    private string CallItemId(int index) => "fc_" + _id[5..] + "_" + index.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
