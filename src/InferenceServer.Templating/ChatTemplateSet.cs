// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text.Json;

namespace InferenceServer.Templating;

/// <summary>
/// A model's chat templates and special tokens, from its <c>tokenizer_config.json</c> (or a template file given on
/// the command line), rendered the way transformers' <c>apply_chat_template</c> renders them: with <c>messages</c>,
/// <c>tools</c> (None when not given), <c>documents</c> (None), <c>add_generation_prompt</c>, the special tokens
/// (<c>bos_token</c>, <c>eos_token</c>, ...) and any extra keyword arguments (which may override a special token).
/// Thread-safe: templates are compiled once and each render has its own state.
/// </summary>
public sealed class ChatTemplateSet
{
    /// <summary>The special-token keys of <c>tokenizer_config.json</c> that are passed to the template.</summary>
    private static readonly string[] SpecialTokenKeys = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

    private static readonly HashSet<string> ReservedNames = ["messages", "tools", "documents", "add_generation_prompt"];

    private readonly Dictionary<string, ChatTemplate> _templates;
    private readonly Dictionary<string, string> _specialTokens;
    private readonly IReadOnlyList<string>? _additionalSpecialTokens;
    private readonly ChatTemplateOptions _options;

    private ChatTemplateSet(Dictionary<string, ChatTemplate> templates, Dictionary<string, string> specialTokens, IReadOnlyList<string>? additional, ChatTemplateOptions? options)
    {
        _templates = templates;
        _specialTokens = specialTokens;
        _additionalSpecialTokens = additional;
        _options = options ?? ChatTemplateOptions.Default;
    }

    /// <summary>The template names: <c>default</c> for a single template, else the names of the list form.</summary>
    internal IReadOnlyCollection<string> TemplateNames => _templates.Keys;

    /// <summary>The special tokens passed to the template (<c>bos_token</c> → text...), without those that are null.</summary>
    internal IReadOnlyDictionary<string, string> SpecialTokens => _specialTokens;

    /// <summary>Reads the chat template(s) and special tokens of a <c>tokenizer_config.json</c>.</summary>
    /// <param name="tokenizerConfigJson">The file's text.</param>
    /// <param name="options">The clock and limits of renders; the defaults when null.</param>
    /// <returns>The set, or null when the file has no <c>chat_template</c>.</returns>
    /// <exception cref="ChatTemplateException">The JSON is malformed (<see cref="ChatTemplateErrorKind.Configuration"/>) or a template has a syntax error.</exception>
    public static ChatTemplateSet? FromTokenizerConfig(string tokenizerConfigJson, ChatTemplateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizerConfigJson);
        using JsonDocument document = ParseConfig(tokenizerConfigJson);
        JsonElement root = document.RootElement;
        if (!root.TryGetProperty("chat_template", out JsonElement template) || template.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var templates = new Dictionary<string, ChatTemplate>(StringComparer.Ordinal);
        switch (template.ValueKind)
        {
            case JsonValueKind.String:
                templates["default"] = ChatTemplate.Parse(template.GetString()!);
                break;
            case JsonValueKind.Array:
                foreach (JsonElement entry in template.EnumerateArray())
                {
                    if (entry.ValueKind != JsonValueKind.Object
                        || !entry.TryGetProperty("name", out JsonElement name) || name.ValueKind != JsonValueKind.String
                        || !entry.TryGetProperty("template", out JsonElement text) || text.ValueKind != JsonValueKind.String)
                    {
                        throw Config("tokenizer_config.json: each entry of the chat_template list must be {\"name\": string, \"template\": string}");
                    }

                    templates[name.GetString()!] = ParseNamed(name.GetString()!, text.GetString()!);
                }

                if (templates.Count == 0)
                {
                    return null;
                }

                break;
            default:
                throw Config("tokenizer_config.json: chat_template must be a string or a list of {\"name\", \"template\"}");
        }

        (Dictionary<string, string> tokens, IReadOnlyList<string>? additional) = ReadSpecialTokens(root);
        return new ChatTemplateSet(templates, tokens, additional, options);
    }

    /// <summary>A single template given as text (<c>--chat-template file.jinja</c>), with the special tokens of an optional <c>tokenizer_config.json</c>.</summary>
    /// <param name="template">The template text.</param>
    /// <param name="tokenizerConfigJson">The <c>tokenizer_config.json</c> text for the special tokens, or null.</param>
    /// <param name="options">The clock and limits of renders; the defaults when null.</param>
    /// <returns>The set, whose only template is named <c>default</c>.</returns>
    /// <exception cref="ChatTemplateException">The template has a syntax error, or the JSON is malformed.</exception>
    public static ChatTemplateSet FromTemplateText(string template, string? tokenizerConfigJson, ChatTemplateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(template);
        var templates = new Dictionary<string, ChatTemplate>(StringComparer.Ordinal) { ["default"] = ChatTemplate.Parse(template) };
        if (tokenizerConfigJson is null)
        {
            return new ChatTemplateSet(templates, new Dictionary<string, string>(StringComparer.Ordinal), null, options);
        }

        using JsonDocument document = ParseConfig(tokenizerConfigJson);
        (Dictionary<string, string> tokens, IReadOnlyList<string>? additional) = ReadSpecialTokens(document.RootElement);
        return new ChatTemplateSet(templates, tokens, additional, options);
    }

    /// <summary>The template used for a request: <c>tool_use</c> when tools are given and it exists, else <c>default</c>.</summary>
    /// <param name="hasTools">Whether the request gives tools.</param>
    /// <returns>The template.</returns>
    /// <exception cref="ChatTemplateException">The list form has neither a matching template nor <c>default</c>.</exception>
    public ChatTemplate Select(bool hasTools)
    {
        if (hasTools && _templates.TryGetValue("tool_use", out ChatTemplate? toolUse))
        {
            return toolUse;
        }

        if (_templates.TryGetValue("default", out ChatTemplate? fallback))
        {
            return fallback;
        }

        throw Config($"the model has chat templates named {string.Join(", ", _templates.Keys)} but none named 'default'");
    }

    /// <summary>Renders a conversation into the prompt text.</summary>
    /// <param name="messages">The messages as the request gives them (role, content as a string or parts, tool_calls, ...).</param>
    /// <param name="addGenerationPrompt">Whether to end with the assistant turn's opening.</param>
    /// <param name="tools">The tool definitions (a JSON array), or null (null JSON and undefined also mean none).</param>
    /// <param name="extraKwargs">Extra template variables (vLLM's <c>chat_template_kwargs</c>); they may override special tokens.</param>
    /// <returns>The prompt.</returns>
    /// <exception cref="ChatTemplateException">The template raised or failed; see <see cref="ChatTemplateException.Kind"/>.</exception>
    /// <exception cref="ArgumentException">An extra keyword argument is named <c>messages</c>, <c>tools</c>, <c>documents</c> or <c>add_generation_prompt</c>.</exception>
    public string Render(IReadOnlyList<JsonElement> messages, bool addGenerationPrompt, JsonElement? tools = null, IReadOnlyDictionary<string, JsonElement>? extraKwargs = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        bool hasTools = tools is { ValueKind: not (JsonValueKind.Null or JsonValueKind.Undefined) };
        ChatTemplate template = Select(hasTools);
        var context = new ChatTemplateContext(_options);
        foreach (KeyValuePair<string, string> token in _specialTokens)
        {
            context.Set(token.Key, token.Value);
        }

        if (_additionalSpecialTokens is not null)
        {
            context.Set("additional_special_tokens", _additionalSpecialTokens);
        }

        if (extraKwargs is not null)
        {
            foreach (KeyValuePair<string, JsonElement> kwarg in extraKwargs)
            {
                if (ReservedNames.Contains(kwarg.Key))
                {
                    throw new ArgumentException($"chat template keyword argument '{kwarg.Key}' is reserved and cannot be overridden", nameof(extraKwargs));
                }

                context.Set(kwarg.Key, kwarg.Value);
            }
        }

        context.Set("messages", messages);
        if (hasTools)
        {
            context.Set("tools", tools!.Value);
        }
        else
        {
            context.Set("tools", (string?)null);
        }

        context.Set("documents", (string?)null);
        context.Set("add_generation_prompt", addGenerationPrompt);
        return template.Render(context);
    }

    /// <summary>Renders a conversation given as one JSON array of messages.</summary>
    /// <param name="messages">The messages array as the request gives it.</param>
    /// <param name="addGenerationPrompt">Whether to end with the assistant turn's opening.</param>
    /// <param name="tools">The tool definitions (a JSON array), or null.</param>
    /// <param name="extraKwargs">Extra template variables (vLLM's <c>chat_template_kwargs</c>).</param>
    /// <returns>The prompt.</returns>
    /// <exception cref="ArgumentException"><paramref name="messages"/> is not an array, or an extra keyword argument is reserved.</exception>
    /// <exception cref="ChatTemplateException">The template raised or failed; see <see cref="ChatTemplateException.Kind"/>.</exception>
    public string Render(JsonElement messages, bool addGenerationPrompt, JsonElement? tools = null, IReadOnlyDictionary<string, JsonElement>? extraKwargs = null)
    {
        if (messages.ValueKind != JsonValueKind.Array)
        {
            throw new ArgumentException("messages must be a JSON array", nameof(messages));
        }

        var list = new List<JsonElement>(messages.GetArrayLength());
        foreach (JsonElement message in messages.EnumerateArray())
        {
            list.Add(message);
        }

        return Render(list, addGenerationPrompt, tools, extraKwargs);
    }

    private static ChatTemplate ParseNamed(string name, string text)
    {
        try
        {
            return ChatTemplate.Parse(text);
        }
        catch (ChatTemplateException ex)
        {
            throw new ChatTemplateException($"chat template '{name}': {ex.Detail}", ex.Kind, ex.Line, ex);
        }
    }

    private static JsonDocument ParseConfig(string json)
    {
        try
        {
            JsonDocument document = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                document.Dispose();
                throw Config("tokenizer_config.json must be a JSON object");
            }

            return document;
        }
        catch (JsonException ex)
        {
            throw new ChatTemplateException($"tokenizer_config.json is not valid JSON: {ex.Message}", ChatTemplateErrorKind.Configuration, null, ex);
        }
    }

    private static (Dictionary<string, string> Tokens, IReadOnlyList<string>? Additional) ReadSpecialTokens(JsonElement root)
    {
        var tokens = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string key in SpecialTokenKeys)
        {
            if (root.TryGetProperty(key, out JsonElement value) && TokenText(value, key) is { } text)
            {
                tokens[key] = text;
            }
        }

        List<string>? additional = null;
        if (root.TryGetProperty("additional_special_tokens", out JsonElement list) && list.ValueKind == JsonValueKind.Array)
        {
            additional = [];
            foreach (JsonElement item in list.EnumerateArray())
            {
                if (TokenText(item, "additional_special_tokens") is { } text)
                {
                    additional.Add(text);
                }
            }
        }

        return (tokens, additional);
    }

    /// <summary>A special token's text: a string, or an AddedToken object's <c>content</c>.</summary>
    private static string? TokenText(JsonElement value, string key) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Null => null,
        JsonValueKind.Object when value.TryGetProperty("content", out JsonElement content) && content.ValueKind == JsonValueKind.String => content.GetString(),
        _ => throw Config($"tokenizer_config.json: {key} must be a string, null or an AddedToken object with \"content\""),
    };

    private static ChatTemplateException Config(string message) => new(message, ChatTemplateErrorKind.Configuration, null);
}
