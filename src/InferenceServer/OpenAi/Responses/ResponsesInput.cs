// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using System.Text.Json.Nodes;

namespace InferenceServer.OpenAi.Responses;

/// <summary>
/// Turns a Responses request's <c>instructions</c> and <c>input</c> into chat <c>messages</c> for the chat template:
/// <c>instructions</c> becomes a leading system message; a string <c>input</c> one user message; <c>input</c> items
/// are messages (content a string or <c>input_text</c> / <c>output_text</c> parts), <c>function_call</c> items
/// (assistant tool calls, consecutive ones in one message) and <c>function_call_output</c> items (tool messages).
/// Every malformed item is a <see cref="RequestValidationException"/> naming its path under <c>input</c>.
/// </summary>
internal static class ResponsesInput
{
    private static readonly HashSet<string> MessageRoles = ["user", "system", "developer", "assistant"];

    /// <summary>The chat messages for <paramref name="reader"/>'s <c>instructions</c> and <c>input</c>.</summary>
    public static JsonArray ToMessages(JsonRequestReader reader)
    {
        var messages = new JsonArray();
        if (reader.String("instructions") is { } instructions)
        {
            messages.Add(Message("system", instructions));
        }

        if (!reader.TryGet("input", out var input))
        {
            throw new RequestValidationException("input", "'input' is required: a string, or an array of input items.");
        }

        switch (input.ValueKind)
        {
            case JsonValueKind.String when input.GetString()!.Length == 0:
                throw new RequestValidationException("input", "'input' must not be an empty string.");
            case JsonValueKind.String:
                messages.Add(Message("user", input.GetString()!));
                break;
            case JsonValueKind.Array when input.GetArrayLength() == 0:
                throw new RequestValidationException("input", "'input' must not be an empty array.");
            case JsonValueKind.Array when input.GetArrayLength() > Chat.ChatPromptRenderer.MaxMessages:
                throw new RequestValidationException("input", $"'input' may hold at most {Chat.ChatPromptRenderer.MaxMessages} items; got {input.GetArrayLength()}.");
            case JsonValueKind.Array:
                AddItems(input, messages);
                break;
            default:
                throw new RequestValidationException("input", $"'input' must be a string or an array of input items, not {JsonRequestReader.Describe(input)}.");
        }

        return messages;
    }

    private static void AddItems(JsonElement input, JsonArray messages)
    {
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        var index = 0;
        JsonArray? openCalls = null;
        foreach (var element in input.EnumerateArray())
        {
            var path = $"input[{index++}]";
            var item = new JsonRequestReader(element, path);
            var type = item.String("type") ?? "message";
            if (type != "function_call")
            {
                openCalls = null;
            }

            switch (type)
            {
                case "message":
                    messages.Add(ReadMessage(item, path));
                    break;
                case "function_call":
                    var callId = Required(item, "call_id", path);
                    var name = Required(item, "name", path);
                    var arguments = item.String("arguments") ?? throw new RequestValidationException(path + ".arguments", $"'{path}.arguments' (the call's arguments as a JSON string) is required.");
                    names[callId] = name;
                    var call = new JsonObject
                    {
                        ["id"] = callId,
                        ["type"] = "function",
                        ["function"] = new JsonObject { ["name"] = name, ["arguments"] = arguments },
                    };
                    if (openCalls is null)
                    {
                        // Consecutive calls are one assistant turn with several tool calls, as chat templates expect.
                        openCalls = [];
                        messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = null, ["tool_calls"] = openCalls });
                    }

                    openCalls.Add(call);
                    break;
                case "function_call_output":
                    var outputId = Required(item, "call_id", path);
                    if (!item.TryGet("output", out var output))
                    {
                        throw new RequestValidationException(path + ".output", $"'{path}.output' is required.");
                    }

                    var tool = new JsonObject { ["role"] = "tool", ["tool_call_id"] = outputId, ["content"] = Content(output, path + ".output") };
                    if (names.TryGetValue(outputId, out var calledName))
                    {
                        tool["name"] = calledName;
                    }

                    messages.Add(tool);
                    break;
                case "item_reference":
                    throw new RequestValidationException(path + ".type", $"'{path}' refers to a stored item, and this server stores nothing (it is stateless); send the item itself.");
                default:
                    throw new RequestValidationException(path + ".type", $"'{path}.type' must be 'message', 'function_call' or 'function_call_output'; '{type}' items are not supported by this server.");
            }
        }
    }

    private static JsonObject ReadMessage(JsonRequestReader item, string path)
    {
        var role = item.String("role") ?? throw new RequestValidationException(path + ".role", $"'{path}.role' is required.");
        if (!MessageRoles.Contains(role))
        {
            throw new RequestValidationException(path + ".role", $"'{path}.role' must be one of user, system, developer, assistant; got '{role}'.");
        }

        if (!item.TryGet("content", out var content))
        {
            throw new RequestValidationException(path + ".content", $"'{path}.content' is required.");
        }

        return new JsonObject { ["role"] = role, ["content"] = Content(content, path + ".content") };
    }

    /// <summary>A string, or text parts (<c>input_text</c>, <c>output_text</c>) as the chat renderer's <c>text</c> parts.</summary>
    private static JsonNode Content(JsonElement content, string path)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            return content.GetString()!;
        }

        if (content.ValueKind != JsonValueKind.Array)
        {
            throw new RequestValidationException(path, $"'{path}' must be a string or an array of content parts, not {JsonRequestReader.Describe(content)}.");
        }

        var parts = new JsonArray();
        var index = 0;
        foreach (var element in content.EnumerateArray())
        {
            var partPath = $"{path}[{index++}]";
            var part = new JsonRequestReader(element, partPath);
            var type = part.String("type") ?? throw new RequestValidationException(partPath + ".type", $"'{partPath}.type' is required.");
            if (type is not ("input_text" or "output_text"))
            {
                throw new RequestValidationException(partPath + ".type", $"Content parts of type '{type}' are not supported by this text-only model; use 'input_text' parts.");
            }

            parts.Add(new JsonObject { ["type"] = "text", ["text"] = Required(part, "text", partPath) });
        }

        return parts;
    }

    private static string Required(JsonRequestReader item, string name, string path)
        => item.String(name) ?? throw new RequestValidationException($"{path}.{name}", $"'{path}.{name}' is required.");

    private static JsonObject Message(string role, string content) => new() { ["role"] = role, ["content"] = content };
}
