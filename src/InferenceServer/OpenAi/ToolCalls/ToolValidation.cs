// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using System.Text.RegularExpressions;

namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>
/// Validates the request's <c>tools</c> and <c>tool_choice</c>. Every failure is a
/// <see cref="RequestValidationException"/> whose <c>param</c> and message name the field path, as OpenAI does
/// (<c>tools[1].function.name</c>).
/// </summary>
/// <remarks>
/// Leniencies follow vLLM: a missing <c>type</c> means <c>"function"</c>, an empty <c>tools</c> array is accepted
/// (no tools), and unknown fields are ignored. Stricter than vLLM: two functions with the same name are refused,
/// since a call could not be told apart.
/// </remarks>
internal static partial class ToolValidation
{
    /// <summary>The name rule OpenAI documents for <c>function.name</c>.</summary>
    public const string NamePattern = "^[a-zA-Z0-9_-]{1,64}$";

    /// <summary>Reads and checks <c>tools</c>: an array of <c>{"type": "function", "function": {"name", "description"?, "parameters"?, "strict"?}}</c>.</summary>
    public static ToolDefinitions ParseTools(JsonElement tools)
    {
        if (tools.ValueKind != JsonValueKind.Array)
        {
            throw Invalid("tools", $"must be an array, not {JsonRequestReader.Describe(tools)}");
        }

        var functions = new List<FunctionTool>(tools.GetArrayLength());
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var index = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            var path = $"tools[{index}]";
            if (tool.ValueKind != JsonValueKind.Object)
            {
                throw Invalid(path, $"must be an object, not {JsonRequestReader.Describe(tool)}");
            }

            if (tool.TryGetProperty("type", out var type) && type.ValueKind != JsonValueKind.Null
                && (type.ValueKind != JsonValueKind.String || type.GetString() != "function"))
            {
                throw Invalid($"{path}.type", $"must be 'function'; got {Show(type)}");
            }

            if (!tool.TryGetProperty("function", out var function) || function.ValueKind == JsonValueKind.Null)
            {
                throw Invalid($"{path}.function", "is required");
            }

            if (function.ValueKind != JsonValueKind.Object)
            {
                throw Invalid($"{path}.function", $"must be an object, not {JsonRequestReader.Describe(function)}");
            }

            var name = ReadName(function, $"{path}.function.name");
            if (!seen.Add(name))
            {
                throw Invalid($"{path}.function.name", $"'{name}' is declared more than once");
            }

            string? description = null;
            if (function.TryGetProperty("description", out var descriptionElement) && descriptionElement.ValueKind != JsonValueKind.Null)
            {
                description = descriptionElement.ValueKind == JsonValueKind.String
                    ? descriptionElement.GetString()
                    : throw Invalid($"{path}.function.description", $"must be a string, not {JsonRequestReader.Describe(descriptionElement)}");
            }

            JsonElement? parameters = null;
            if (function.TryGetProperty("parameters", out var parametersElement) && parametersElement.ValueKind != JsonValueKind.Null)
            {
                parameters = parametersElement.ValueKind == JsonValueKind.Object
                    ? parametersElement.Clone()
                    : throw Invalid($"{path}.function.parameters", $"must be a JSON Schema object, not {JsonRequestReader.Describe(parametersElement)}");
            }

            if (function.TryGetProperty("strict", out var strict) && strict.ValueKind is not (JsonValueKind.True or JsonValueKind.False or JsonValueKind.Null))
            {
                throw Invalid($"{path}.function.strict", $"must be a boolean, not {JsonRequestReader.Describe(strict)}");
            }

            functions.Add(new FunctionTool(name, description, parameters));
            index++;
        }

        return new ToolDefinitions(functions);
    }

    /// <summary>
    /// Reads and checks <c>tool_choice</c> against <paramref name="tools"/> (null when the request has none).
    /// Absent or null: <c>auto</c> with tools, <c>none</c> without (OpenAI's default). <c>auto</c>, <c>required</c>
    /// and a named function need tools; a named function must be declared.
    /// </summary>
    /// <param name="toolChoice">The field; <c>default</c> or a JSON null when absent.</param>
    /// <param name="tools">The validated tools, or null when the request has none.</param>
    public static ToolChoice ParseToolChoice(JsonElement toolChoice, ToolDefinitions? tools)
    {
        var hasTools = tools is not null && tools.Functions.Count > 0;
        ToolChoice choice;
        switch (toolChoice.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                return hasTools ? ToolChoice.Auto : ToolChoice.None;
            case JsonValueKind.String:
                choice = toolChoice.GetString() switch
                {
                    "none" => ToolChoice.None,
                    "auto" => ToolChoice.Auto,
                    "required" => ToolChoice.Required,
                    _ => throw Invalid("tool_choice", $"must be 'none', 'auto', 'required' or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}; got {Show(toolChoice)}"),
                };
                break;
            case JsonValueKind.Object:
                choice = ReadNamedChoice(toolChoice);
                break;
            default:
                throw Invalid("tool_choice", $"must be a string or an object, not {JsonRequestReader.Describe(toolChoice)}");
        }

        if (choice.Mode != ToolChoiceMode.None && !hasTools)
        {
            throw Invalid("tool_choice", $"'{Describe(choice)}' is only allowed when 'tools' declares at least one function");
        }

        if (choice.Mode == ToolChoiceMode.Function && !tools!.TryGet(choice.FunctionName!, out _))
        {
            throw Invalid("tool_choice.function.name", $"no function named '{choice.FunctionName}' is declared in 'tools'");
        }

        return choice;
    }

    private static ToolChoice ReadNamedChoice(JsonElement toolChoice)
    {
        if (!toolChoice.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != "function")
        {
            throw Invalid("tool_choice.type", $"must be 'function'; got {(type.ValueKind == JsonValueKind.Undefined ? "nothing" : Show(type))}");
        }

        if (!toolChoice.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object)
        {
            throw Invalid("tool_choice.function", $"must be an object with a 'name', not {(function.ValueKind == JsonValueKind.Undefined ? "nothing" : JsonRequestReader.Describe(function))}");
        }

        return new ToolChoice(ToolChoiceMode.Function, ReadName(function, "tool_choice.function.name"));
    }

    private static string ReadName(JsonElement function, string path)
    {
        if (!function.TryGetProperty("name", out var nameElement) || nameElement.ValueKind == JsonValueKind.Null)
        {
            throw Invalid(path, "is required");
        }

        if (nameElement.ValueKind != JsonValueKind.String)
        {
            throw Invalid(path, $"must be a string, not {JsonRequestReader.Describe(nameElement)}");
        }

        var name = nameElement.GetString()!;
        return NameRegex().IsMatch(name)
            ? name
            : throw Invalid(path, $"must match {NamePattern} (letters, digits, '_' and '-', 1 to 64 characters); got '{name}'");
    }

    private static string Describe(ToolChoice choice) => choice.Mode switch
    {
        ToolChoiceMode.Auto => "auto",
        ToolChoiceMode.Required => "required",
        ToolChoiceMode.Function => $"function {choice.FunctionName}",
        _ => "none",
    };

    private static string Show(JsonElement value) => value.ValueKind == JsonValueKind.String
        ? $"'{value.GetString()}'"
        : JsonRequestReader.Describe(value);

    private static RequestValidationException Invalid(string path, string problem) => new(path, $"Invalid '{path}': {problem}.");

    // \z, not $: in .NET '$' also matches before a final newline.
    [GeneratedRegex(@"^[a-zA-Z0-9_-]{1,64}\z", RegexOptions.CultureInvariant)]
    private static partial Regex NameRegex();
}
