// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using InferenceServer.Engine;
using InferenceServer.OpenAi.ToolCalls;
using InferenceServer.Templating;

namespace InferenceServer.OpenAi.Chat;

/// <summary>
/// Renders chat <c>messages</c> into the prompt text with the model's chat template (<c>--chat-template</c>, else
/// <c>chat_template.jinja</c> in the model folder, else <c>tokenizer_config.json</c>'s <c>chat_template</c>), as vLLM's <c>apply_chat_template</c> does: text parts of a message's
/// content are joined with newlines, <c>developer</c> messages are given to the template as <c>system</c>, and assistant
/// tool-call arguments (JSON strings in OpenAI's API) are given as objects, which is what templates expect.
/// </summary>
internal sealed class ChatPromptRenderer
{
    /// <summary>Most messages per request.</summary>
    public const int MaxMessages = 4096;

    private static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant", "tool", "function"];

    private readonly ChatTemplateSet? _templates;
    private readonly string _modelName;

    /// <summary>Loads the template for <paramref name="model"/>; <paramref name="overridePath"/> is <c>--chat-template</c>.</summary>
    /// <exception cref="ChatTemplateException">The template or the tokenizer config is malformed.</exception>
    /// <exception cref="IOException">The template file cannot be read.</exception>
    public ChatPromptRenderer(ServedModel model, string? overridePath)
    {
        _modelName = model.Name;
        var configPath = model.Package.TokenizerConfigPath;
        var config = configPath is not null ? File.ReadAllText(configPath) : null;
        // transformers' own order: --chat-template, then a chat_template.jinja beside the model, then tokenizer_config.json.
        var besideModel = Path.Combine(model.Package.Directory, "chat_template.jinja");
        overridePath ??= File.Exists(besideModel) ? besideModel : null;
        if (overridePath is not null)
        {
            _templates = ChatTemplateSet.FromTemplateText(File.ReadAllText(overridePath), config);
        }
        else if (config is not null)
        {
            _templates = ChatTemplateSet.FromTokenizerConfig(config);
        }
    }

    /// <summary>Whether the model has a chat template.</summary>
    public bool HasTemplate => _templates is not null;

    /// <summary>What the template does with tools, for the template a request with or without tools uses.</summary>
    public ToolTemplateSupport ToolSupport(bool hasTools) => _templates is null
        ? default
        : ToolCallParsers.Describe(_templates.Select(hasTools).Source);

    /// <summary>
    /// Reads <c>messages</c>, <c>add_generation_prompt</c>, <c>continue_final_message</c>, <c>tools</c> and
    /// <c>chat_template_kwargs</c> from <paramref name="reader"/> and renders the prompt.
    /// </summary>
    /// <exception cref="RequestValidationException">The messages are malformed, the template raised, or there is no template.</exception>
    public string Render(JsonRequestReader reader, bool defaultAddGenerationPrompt, ToolDefinitions? tools = null)
    {
        if (_templates is null)
        {
            throw new RequestValidationException("messages", $"The model '{_modelName}' has no chat template (no 'chat_template' in its tokenizer_config.json), so it cannot answer chat requests; use /v1/completions, or start the server with --chat-template <file>.");
        }

        var messages = ReadMessages(reader);
        var addGenerationPrompt = reader.Bool("add_generation_prompt") ?? defaultAddGenerationPrompt;
        var continueFinal = reader.Bool("continue_final_message") ?? false;
        if (continueFinal && addGenerationPrompt && reader.Bool("add_generation_prompt") == true)
        {
            throw new RequestValidationException("continue_final_message", "'continue_final_message' and 'add_generation_prompt' cannot both be true.");
        }

        if (continueFinal)
        {
            addGenerationPrompt = false;
        }

        var kwargs = ReadKwargs(reader);
        JsonElement? toolsElement = tools is not null && reader.TryGet("tools", out var t) ? t : null;
        string text;
        try
        {
            text = _templates.Render(messages, addGenerationPrompt, toolsElement, kwargs);
        }
        catch (ChatTemplateException ex) when (ex.Kind is ChatTemplateErrorKind.RaisedByTemplate)
        {
            throw new RequestValidationException("messages", $"The model's chat template refused the conversation: {ex.Message}");
        }
        catch (ChatTemplateException ex)
        {
            throw new RequestValidationException("messages", $"The model's chat template failed on this conversation: {ex.Message}");
        }
        catch (ArgumentException ex)
        {
            // Not ex.Message: it ends in the parameter's C# name ("(Parameter 'extraKwargs')").
            throw new RequestValidationException("chat_template_kwargs", $"'chat_template_kwargs' cannot be used: {ArgumentText(ex)}.");
        }

        return continueFinal ? TrimAfterFinalMessage(text, messages[^1]) : text;
    }

    private static List<JsonElement> ReadMessages(JsonRequestReader reader)
    {
        if (!reader.TryGet("messages", out var array))
        {
            throw new RequestValidationException("messages", "'messages' is required.");
        }

        if (array.ValueKind != JsonValueKind.Array || array.GetArrayLength() == 0)
        {
            throw new RequestValidationException("messages", $"'messages' must be a non-empty array, not {(array.ValueKind == JsonValueKind.Array ? "an empty array" : JsonRequestReader.Describe(array))}.");
        }

        if (array.GetArrayLength() > MaxMessages)
        {
            throw new RequestValidationException("messages", $"'messages' may hold at most {MaxMessages} messages; got {array.GetArrayLength()}.");
        }

        var messages = new List<JsonElement>(array.GetArrayLength());
        var index = 0;
        foreach (var item in array.EnumerateArray())
        {
            messages.Add(NormalizeMessage(item, $"messages[{index}]"));
            index++;
        }

        return messages;
    }

    private static JsonElement NormalizeMessage(JsonElement item, string path)
    {
        var message = new JsonRequestReader(item, path);
        var role = message.String("role") ?? throw new RequestValidationException(path + ".role", $"'{path}.role' is required.");
        if (!Roles.Contains(role))
        {
            throw new RequestValidationException(path + ".role", $"'{path}.role' must be one of system, developer, user, assistant, tool; got '{role}'.");
        }

        var node = new JsonObject();
        foreach (var property in message.Properties)
        {
            node[property.Name] = property.Name switch
            {
                "role" => role == "developer" ? "system" : role,
                "content" => NormalizeContent(property.Value, path + ".content"),
                "tool_calls" => NormalizeToolCalls(property.Value, path + ".tool_calls"),
                _ => JsonNode.Parse(property.Value.GetRawText()),
            };
        }

        if (!node.ContainsKey("content"))
        {
            if (role != "assistant")
            {
                throw new RequestValidationException(path + ".content", $"'{path}.content' is required for a {role} message.");
            }

            node["content"] = null;
        }

        return JsonSerializer.SerializeToElement(node);
    }

    private static JsonNode? NormalizeContent(JsonElement content, string path)
    {
        switch (content.ValueKind)
        {
            case JsonValueKind.Null:
                return null;
            case JsonValueKind.String:
                return content.GetString();
            case JsonValueKind.Array:
                var text = new StringBuilder();
                var index = 0;
                foreach (var part in content.EnumerateArray())
                {
                    var partPath = $"{path}[{index}]";
                    var reader = new JsonRequestReader(part, partPath);
                    var type = reader.String("type") ?? throw new RequestValidationException(partPath + ".type", $"'{partPath}.type' is required.");
                    if (type != "text")
                    {
                        throw new RequestValidationException(partPath + ".type", $"Content parts of type '{type}' are not supported by this text-only model; use 'text' parts.");
                    }

                    var partText = reader.String("text") ?? throw new RequestValidationException(partPath + ".text", $"'{partPath}.text' is required.");
                    if (index > 0)
                    {
                        text.Append('\n');
                    }

                    text.Append(partText);
                    index++;
                }

                return text.ToString();
            default:
                throw new RequestValidationException(path, $"'{path}' must be a string or an array of content parts, not {JsonRequestReader.Describe(content)}.");
        }
    }

    private static JsonNode NormalizeToolCalls(JsonElement calls, string path)
    {
        if (calls.ValueKind != JsonValueKind.Array)
        {
            throw new RequestValidationException(path, $"'{path}' must be an array, not {JsonRequestReader.Describe(calls)}.");
        }

        var array = new JsonArray();
        var index = 0;
        foreach (var call in calls.EnumerateArray())
        {
            var callPath = $"{path}[{index}]";
            var reader = new JsonRequestReader(call, callPath);
            if (!reader.TryGet("function", out var function))
            {
                throw new RequestValidationException(callPath + ".function", $"'{callPath}.function' is required.");
            }

            var functionReader = new JsonRequestReader(function, callPath + ".function");
            var name = functionReader.String("name") ?? throw new RequestValidationException(callPath + ".function.name", $"'{callPath}.function.name' is required.");
            var node = JsonNode.Parse(call.GetRawText())!.AsObject();
            var functionNode = node["function"]!.AsObject();
            functionNode["name"] = name;
            if (functionReader.TryGet("arguments", out var arguments) && arguments.ValueKind == JsonValueKind.String)
            {
                // OpenAI sends arguments as a JSON string; templates expect the object (vLLM parses it the same way).
                try
                {
                    functionNode["arguments"] = JsonNode.Parse(arguments.GetString()!);
                }
                catch (JsonException)
                {
                    // Not JSON: the template gets the string as sent.
                }
            }

            array.Add(node);
            index++;
        }

        return array;
    }

    private static Dictionary<string, JsonElement>? ReadKwargs(JsonRequestReader reader)
    {
        if (!reader.TryGet("chat_template_kwargs", out var element))
        {
            return null;
        }

        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new RequestValidationException("chat_template_kwargs", $"'chat_template_kwargs' must be an object, not {JsonRequestReader.Describe(element)}.");
        }

        var kwargs = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var property in element.EnumerateObject())
        {
            kwargs[property.Name] = property.Value.Clone();
        }

        return kwargs;
    }

    /// <summary>
    /// <c>continue_final_message</c>: the prompt ends where the final (assistant) message's text ends, so the model
    /// continues it instead of starting a new turn; whatever the template adds after it is cut, as vLLM does.
    /// </summary>
    private static string TrimAfterFinalMessage(string text, JsonElement finalMessage)
    {
        var content = finalMessage.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()! : string.Empty;
        if (content.Length == 0)
        {
            return text;
        }

        var end = text.LastIndexOf(content, StringComparison.Ordinal);
        if (end < 0)
        {
            throw new RequestValidationException("continue_final_message", "The chat template changed the final message's text, so it cannot be continued.");
        }

        return text[..(end + content.Length)];
    }

    /// <summary>An <see cref="ArgumentException"/>'s message without the " (Parameter 'x')" suffix the runtime appends.</summary>
    internal static string ArgumentText(ArgumentException ex)
    {
        var message = ex.Message;
        if (ex.ParamName is { } name && message.EndsWith($" (Parameter '{name}')", StringComparison.Ordinal))
        {
            message = message[..^$" (Parameter '{name}')".Length];
        }

        return message.TrimEnd('.');
    }
}
