// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using InferenceServer.Engine;
using InferenceServer.OpenAi.ToolCalls;

namespace InferenceServer.OpenAi.Chat;

/// <summary>A validated <c>POST /v1/chat/completions</c> request: the rendered prompt, settings and tool handling.</summary>
internal sealed class ChatCompletionRequest
{
    /// <summary>The rendered prompt as token ids.</summary>
    public required IReadOnlyList<int> Prompt { get; init; }

    /// <summary>The shared generation settings.</summary>
    public required GenerationSettings Settings { get; init; }

    /// <summary>The request's tools, or null.</summary>
    public ToolDefinitions? Tools { get; init; }

    /// <summary>How tools may be called.</summary>
    public ToolChoice ToolChoice { get; init; } = ToolChoice.None;

    /// <summary>The parser for tool calls in free output (<c>tool_choice</c> auto), or null.</summary>
    public IToolCallParser? ToolParser { get; init; }

    /// <summary>The template's tool-call format (decides tool call id style).</summary>
    public ToolCallFormat ToolFormat { get; init; }

    /// <summary>The JSON schema a constrained tool choice imposes, or null.</summary>
    public JsonElement? ToolSchema { get; init; }

    /// <summary>
    /// Splits a choice's whole generated text into its content and tool calls: under a constrained tool choice the
    /// text is the schema's JSON, with <c>tool_choice</c> auto the model's parser reads it; otherwise it is all content.
    /// </summary>
    public (string? Content, IReadOnlyList<ParsedToolCall> Calls) SplitToolCalls(string text)
    {
        ToolCallParseResult? parsed = null;
        if (ToolChoice.IsConstrained)
        {
            parsed = ToolChoiceSchemas.ToToolCalls(ToolChoice, text, ToolFormat);
        }
        else if (ToolParser is { } parser)
        {
            parsed = parser.Parse(text, Tools?.Names);
        }

        return parsed is null ? (text, []) : (parsed.Content, parsed.ToolCalls);
    }

    /// <summary>
    /// Each choice's output constraint: the schema of a constrained tool choice, else <c>response_format</c>'s; null
    /// for free text.
    /// </summary>
    /// <exception cref="RequestValidationException">The schema cannot be enforced.</exception>
    public Func<Engine.Requests.ITokenConstraint>? CreateConstraints(StructuredOutput structured) => ToolSchema is { } schema
        ? structured.CreateFactory(schema, strict: true, "tools")
        : structured.CreateFactory(Settings.Format);

    /// <summary>Parses and validates <paramref name="body"/>.</summary>
    public static ChatCompletionRequest Parse(JsonElement body, ServedModel model, ChatPromptRenderer renderer)
    {
        var reader = new JsonRequestReader(body);
        TokenizeEndpoint.CheckModel(reader, model);
        if (model.Tokenizer is null)
        {
            throw new RequestValidationException("messages", $"The model '{model.Name}' has no tokenizer (its folder has no tokenizer.json), so it cannot answer chat requests; send token ids to /v1/completions.");
        }

        foreach (var refused in (string[])["functions", "function_call", "audio", "modalities", "prediction"])
        {
            if (reader.TryGet(refused, out _))
            {
                throw new RequestValidationException(refused, $"'{refused}' is not supported by this server.");
            }
        }

        if (reader.TryGet("chat_template", out _))
        {
            // vLLM refuses a template sent with the request unless started with --trust-request-chat-template: a request's
            // Jinja runs on the server. This server has no such flag, so it refuses it always rather than render the
            // model's template in its place without a word (the template in use is the model's, or --chat-template).
            throw new RequestValidationException("chat_template", "A chat template sent with the request is not accepted: this server renders the model's own template or the one given by --chat-template at start.");
        }

        ToolDefinitions? tools = null;
        if (reader.TryGet("tools", out var toolsElement))
        {
            tools = ToolValidation.ParseTools(toolsElement);
        }

        var toolChoice = ToolValidation.ParseToolChoice(reader.TryGet("tool_choice", out var choiceElement) ? choiceElement : default, tools);
        _ = reader.Bool("parallel_tool_calls");
        var support = renderer.ToolSupport(tools is not null);
        if (tools is not null && renderer.HasTemplate && !support.RendersToolDefinitions)
        {
            throw new RequestValidationException("tools", $"The chat template of the model '{model.Name}' does not render tool definitions, so it cannot be given 'tools'.");
        }

        var text = renderer.Render(reader, defaultAddGenerationPrompt: true, tools);
        var prompt = model.Tokenizer.Encode(text, reader.Bool("add_special_tokens") ?? false);
        if (prompt.Count == 0)
        {
            throw new RequestValidationException("messages", "The rendered chat prompt is empty.");
        }

        var logprobsOn = reader.Bool("logprobs") ?? false;
        var top = (int?)reader.Integer("top_logprobs", 0, GenerationSettings.MaxLogprobs);
        if (top is > 0 && !logprobsOn)
        {
            throw new RequestValidationException("top_logprobs", "'top_logprobs' needs 'logprobs' set to true.");
        }

        if (reader.Bool("echo") == true)
        {
            throw new RequestValidationException("echo", "'echo' is not supported on chat completions.");
        }

        var maxName = reader.TryGet("max_completion_tokens", out _) ? "max_completion_tokens" : "max_tokens";
        var settings = GenerationSettings.Read(reader, model, prompt.Count, model.Spec.ContextLength - prompt.Count, maxName, logprobsOn ? top ?? 0 : null, null);
        if (settings.Format.IsJson && toolChoice.IsConstrained)
        {
            throw new RequestValidationException("response_format", "'response_format' cannot be combined with a 'tool_choice' of 'required' or a named function.");
        }

        var schema = ToolChoiceSchemas.For(toolChoice, tools);
        var parser = toolChoice.Mode == ToolChoiceMode.Auto ? ToolCallParsers.Create(support.Format) : null;
        return new ChatCompletionRequest
        {
            Prompt = [.. prompt],
            // Tool-call markers are special tokens in some families: keep them in the text the parser reads (as vLLM does).
            Settings = parser is not null ? settings with { SkipSpecialTokens = false } : settings,
            Tools = tools,
            ToolChoice = toolChoice,
            ToolParser = parser,
            ToolFormat = support.Format,
            ToolSchema = schema is null ? null : ToolChoiceSchemas.ToElement(schema),
        };
    }
}
