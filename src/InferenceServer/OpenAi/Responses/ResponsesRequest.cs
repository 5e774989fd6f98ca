// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using InferenceServer.Engine;
using InferenceServer.OpenAi.Chat;

namespace InferenceServer.OpenAi.Responses;

/// <summary>
/// A validated <c>POST /v1/responses</c> request. The body is translated into the chat completion it means
/// (<c>input</c> and <c>instructions</c> to <c>messages</c>, <c>max_output_tokens</c> to <c>max_completion_tokens</c>,
/// flat function <c>tools</c> to chat tools, <c>text.format</c> to <c>response_format</c>) and parsed by
/// <see cref="ChatCompletionRequest.Parse"/>, so both endpoints render, validate and generate alike; errors are
/// reported under this API's parameter names. The server is stateless: <c>store</c> is accepted and nothing is kept,
/// so <c>previous_response_id</c> and <c>conversation</c> are refused.
/// </summary>
internal sealed partial class ResponsesRequest
{
    /// <summary>
    /// Fields that mean the same here as on chat completions: OpenAI's, then the vLLM sampling and stopping extensions
    /// that the other endpoints take (as vLLM's own Responses endpoint does).
    /// </summary>
    private static readonly string[] PassedThrough =
    [
        "model", "temperature", "top_p", "stream", "parallel_tool_calls", "user",
        "seed", "top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty", "stop", "ignore_eos", "min_tokens", "priority", "timeout",
    ];

    /// <summary>The chat completion the request means.</summary>
    public required ChatCompletionRequest Chat { get; init; }

    /// <summary>The request's <c>instructions</c>, echoed in the response.</summary>
    public string? Instructions { get; init; }

    /// <summary>The request's <c>max_output_tokens</c>, echoed in the response.</summary>
    public long? MaxOutputTokens { get; init; }

    /// <summary>The request's <c>tools</c> as sent (JSON), echoed in the response; null when absent.</summary>
    public string? ToolsJson { get; init; }

    /// <summary>The request's <c>tool_choice</c> as sent (JSON); null when absent.</summary>
    public string? ToolChoiceJson { get; init; }

    /// <summary>The request's <c>text</c> as sent (JSON); null when absent.</summary>
    public string? TextJson { get; init; }

    /// <summary>The request's <c>metadata</c> as sent (JSON); null when absent.</summary>
    public string? MetadataJson { get; init; }

    /// <summary>The request's <c>user</c>.</summary>
    public string? User { get; init; }

    /// <summary>The request's <c>parallel_tool_calls</c> (default true).</summary>
    public bool ParallelToolCalls { get; init; } = true;

    /// <summary>The request's <c>store</c>, echoed; nothing is stored either way.</summary>
    public bool Store { get; init; }

    /// <summary>Parses and validates <paramref name="body"/>.</summary>
    /// <exception cref="RequestValidationException">The request is invalid; the error names this API's parameter.</exception>
    public static ResponsesRequest Parse(JsonElement body, ServedModel model, ChatPromptRenderer renderer)
    {
        var reader = new JsonRequestReader(body);
        RefuseState(reader);
        var chat = new JsonObject();
        foreach (var passed in PassedThrough)
        {
            if (body.TryGetProperty(passed, out var value))
            {
                chat[passed] = JsonNode.Parse(value.GetRawText());
            }
        }

        chat["messages"] = ResponsesInput.ToMessages(reader);
        if (body.TryGetProperty("max_output_tokens", out var maxOutput))
        {
            chat["max_completion_tokens"] = JsonNode.Parse(maxOutput.GetRawText());
        }

        if (reader.TryGet("tools", out var tools))
        {
            chat["tools"] = ToChatTools(tools);
        }

        if (reader.TryGet("tool_choice", out var toolChoice))
        {
            chat["tool_choice"] = ToChatToolChoice(toolChoice);
        }

        string? textJson = null;
        if (reader.TryGet("text", out var text))
        {
            textJson = text.GetRawText();
            if (new JsonRequestReader(text, "text").TryGet("format", out var format))
            {
                chat["response_format"] = ToResponseFormat(format);
            }
        }

        if (reader.TryGet("metadata", out var metadata) && metadata.ValueKind != JsonValueKind.Object)
        {
            throw new RequestValidationException("metadata", $"'metadata' must be an object, not {JsonRequestReader.Describe(metadata)}.");
        }

        var top = reader.Integer("top_logprobs", 0, GenerationSettings.MaxLogprobs);
        if (top > 0)
        {
            throw new RequestValidationException("top_logprobs", "'top_logprobs' is not supported on /v1/responses; use /v1/chat/completions for logprobs.");
        }

        var truncation = reader.String("truncation");
        if (truncation is not (null or "auto" or "disabled"))
        {
            throw new RequestValidationException("truncation", $"'truncation' must be 'auto' or 'disabled', not '{truncation}'.");
        }

        ChatCompletionRequest parsed;
        try
        {
            parsed = ChatCompletionRequest.Parse(JsonSerializer.SerializeToElement(chat), model, renderer);
        }
        catch (RequestValidationException ex)
        {
            throw Rename(ex);
        }

        return new ResponsesRequest
        {
            Chat = parsed,
            Instructions = reader.String("instructions"),
            MaxOutputTokens = reader.Integer("max_output_tokens", 1, int.MaxValue),
            ToolsJson = tools.ValueKind == JsonValueKind.Array ? tools.GetRawText() : null,
            ToolChoiceJson = toolChoice.ValueKind != JsonValueKind.Undefined ? toolChoice.GetRawText() : null,
            TextJson = textJson,
            MetadataJson = metadata.ValueKind == JsonValueKind.Object ? metadata.GetRawText() : null,
            User = reader.String("user"),
            ParallelToolCalls = reader.Bool("parallel_tool_calls") ?? true,
            Store = reader.Bool("store") ?? false,
        };
    }

    /// <summary>
    /// Maps an error of the translated chat request back to this API's names (<c>messages</c> and <c>prompt</c> are
    /// <c>input</c>, <c>max_completion_tokens</c> is <c>max_output_tokens</c>, <c>response_format</c> is
    /// <c>text.format</c>, tools lose their <c>function.</c> level), in the parameter and in the message.
    /// </summary>
    public static RequestValidationException Rename(RequestValidationException ex)
    {
        static string Map(string text) => ToolFunctionPath().Replace(
            text.Replace("response_format.json_schema.", "text.format.", StringComparison.Ordinal)
                .Replace("response_format", "text.format", StringComparison.Ordinal)
                .Replace("max_completion_tokens", "max_output_tokens", StringComparison.Ordinal)
                .Replace("tool_choice.function.name", "tool_choice.name", StringComparison.Ordinal),
            "tools[$1].");
        var param = ex.Param switch
        {
            null => null,
            "prompt" => "input",
            _ when ex.Param.StartsWith("messages", StringComparison.Ordinal) => "input",
            _ => Map(ex.Param),
        };
        return new RequestValidationException(param, Map(ex.Message), ex.StatusCode, ex.Type, ex.Code);
    }

    private static void RefuseState(JsonRequestReader reader)
    {
        if (reader.TryGet("previous_response_id", out _))
        {
            throw new RequestValidationException("previous_response_id", "'previous_response_id' is not supported: this server is stateless and stores no responses; send the whole conversation in 'input' (earlier output items included).");
        }

        if (reader.TryGet("conversation", out _))
        {
            throw new RequestValidationException("conversation", "'conversation' is not supported: this server is stateless and stores no conversations; send the whole conversation in 'input'.");
        }

        if (reader.TryGet("prompt", out _))
        {
            throw new RequestValidationException("prompt", "'prompt' (a stored prompt template) is not supported by this server; send 'instructions' and 'input'.");
        }

        if (reader.Bool("background") == true)
        {
            throw new RequestValidationException("background", "'background' is not supported: this server is stateless, so a response cannot be fetched later.");
        }

        _ = reader.Bool("store");
    }

    private static JsonArray ToChatTools(JsonElement tools)
    {
        if (tools.ValueKind != JsonValueKind.Array)
        {
            throw new RequestValidationException("tools", $"'tools' must be an array, not {JsonRequestReader.Describe(tools)}.");
        }

        var chatTools = new JsonArray();
        var index = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            var path = $"tools[{index++}]";
            var reader = new JsonRequestReader(tool, path);
            var type = reader.String("type") ?? throw new RequestValidationException(path + ".type", $"'{path}.type' is required.");
            if (type != "function")
            {
                throw new RequestValidationException(path + ".type", $"'{path}.type' must be 'function'; '{type}' tools are not supported by this server.");
            }

            var function = new JsonObject();
            foreach (var property in reader.Properties)
            {
                if (property.Name != "type")
                {
                    function[property.Name] = JsonNode.Parse(property.Value.GetRawText());
                }
            }

            chatTools.Add(new JsonObject { ["type"] = "function", ["function"] = function });
        }

        return chatTools;
    }

    private static JsonNode? ToChatToolChoice(JsonElement toolChoice)
    {
        if (toolChoice.ValueKind != JsonValueKind.Object)
        {
            return JsonNode.Parse(toolChoice.GetRawText());
        }

        var reader = new JsonRequestReader(toolChoice, "tool_choice");
        var type = reader.String("type");
        if (type != "function")
        {
            throw new RequestValidationException("tool_choice.type", $"'tool_choice.type' must be 'function', not {(type is null ? "absent" : $"'{type}'")}; only function tools are supported by this server.");
        }

        return new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = reader.String("name") } };
    }

    private static JsonObject ToResponseFormat(JsonElement format)
    {
        var reader = new JsonRequestReader(format, "text.format");
        var type = reader.String("type") ?? throw new RequestValidationException("text.format.type", "'text.format.type' is required: 'text', 'json_object' or 'json_schema'.");
        if (type != "json_schema")
        {
            return new JsonObject { ["type"] = type };
        }

        // The Responses API flattens chat's json_schema object into the format itself.
        var schema = new JsonObject();
        foreach (var property in reader.Properties)
        {
            if (property.Name != "type")
            {
                schema[property.Name] = JsonNode.Parse(property.Value.GetRawText());
            }
        }

        return new JsonObject { ["type"] = type, ["json_schema"] = schema };
    }

    [GeneratedRegex(@"tools\[(\d+)\]\.function\.", RegexOptions.CultureInvariant)]
    private static partial Regex ToolFunctionPath();
}
