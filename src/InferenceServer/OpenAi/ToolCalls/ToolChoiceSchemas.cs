// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using System.Text.Json.Nodes;

namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>
/// JSON Schemas that constrain the output for <c>tool_choice</c> <c>required</c> or a named function, and the
/// conversion of the constrained output back to tool calls, as vLLM does (<c>get_json_schema_from_tools</c> and its
/// serving layer). The constrained document is the whole output: no chat-template markers around it.
/// </summary>
internal static class ToolChoiceSchemas
{
    // The request's depth limit plus the levels ForRequired wraps around a function's parameters.
    private static readonly JsonSerializerOptions WrappedDepth = new() { MaxDepth = JsonBody.MaxDepth + 8 };

    /// <summary>
    /// The schema for a named function: the function's <c>parameters</c> (so the output is the arguments object;
    /// the name is known), or <c>{"type": "object", "properties": {}}</c> when it declares none.
    /// </summary>
    public static JsonObject ForNamed(ToolDefinitions tools, string name)
    {
        ArgumentNullException.ThrowIfNull(tools);
        return tools.TryGet(name, out var function)
            ? ParametersOf(function)
            : throw new RequestValidationException("tool_choice.function.name", $"Invalid 'tool_choice.function.name': no function named '{name}' is declared in 'tools'.");
    }

    /// <summary><see cref="ForNamed(ToolDefinitions, string)"/> over the raw <c>tools</c> array, validated first.</summary>
    public static JsonObject ForNamed(JsonElement tools, string name) => ForNamed(ToolValidation.ParseTools(tools), name);

    /// <summary>
    /// The schema for <c>required</c>: an array of at least one <c>{"name": NAME, "parameters": PARAMS}</c>, each item
    /// matching one function through <c>anyOf</c> (name as a one-value <c>enum</c>). Each function's <c>$defs</c> move
    /// to the root, where their <c>#/$defs/...</c> references now point; two functions defining the same name
    /// differently are refused (vLLM refuses them too).
    /// </summary>
    public static JsonObject ForRequired(ToolDefinitions tools)
    {
        ArgumentNullException.ThrowIfNull(tools);
        if (tools.Functions.Count == 0)
        {
            throw new RequestValidationException("tool_choice", "Invalid 'tool_choice': 'required' needs at least one function in 'tools'.");
        }

        var anyOf = new JsonArray();
        JsonObject? definitions = null;
        foreach (var function in tools.Functions)
        {
            var parameters = ParametersOf(function);
            if (parameters.Remove("$defs", out var defs) && defs is JsonObject defsObject)
            {
                definitions ??= [];
                foreach (var (defName, defSchema) in defsObject.ToArray())
                {
                    if (definitions.TryGetPropertyValue(defName, out var existing))
                    {
                        if (!JsonNode.DeepEquals(existing, defSchema))
                        {
                            throw new RequestValidationException("tools", $"Invalid 'tools': the definition '$defs/{defName}' has different schemas in different functions, which is not supported with tool_choice 'required'.");
                        }

                        continue;
                    }

                    defsObject.Remove(defName);
                    definitions[defName] = defSchema;
                }
            }

            anyOf.Add(new JsonObject
            {
                ["type"] = "object",
                ["properties"] = new JsonObject
                {
                    ["name"] = new JsonObject { ["type"] = "string", ["enum"] = new JsonArray(function.Name) },
                    ["parameters"] = parameters,
                },
                ["required"] = new JsonArray("name", "parameters"),
            });
        }

        var schema = new JsonObject
        {
            ["type"] = "array",
            ["minItems"] = 1,
            // vLLM puts "type": "object" beside "anyOf"; here each branch carries it, which means the same and is what
            // the constrained decoder compiles (it refuses a type beside anyOf).
            ["items"] = new JsonObject { ["anyOf"] = anyOf },
        };
        if (definitions is not null)
        {
            schema["$defs"] = definitions;
        }

        return schema;
    }

    /// <summary>
    /// <paramref name="schema"/> as a <see cref="JsonElement"/> for the schema compiler. The <c>required</c> schema nests
    /// each function's parameters a few levels deeper than the request did, so the serializer's depth limit is the
    /// request's (<see cref="JsonBody.MaxDepth"/>) plus that wrapping: a deep but valid request cannot fail here with a
    /// 500; the compiler's own nesting limit then applies.
    /// </summary>
    public static JsonElement ToElement(JsonObject schema) => JsonSerializer.SerializeToElement(schema, WrappedDepth);

    /// <summary><see cref="ForRequired(ToolDefinitions)"/> over the raw <c>tools</c> array, validated first.</summary>
    public static JsonObject ForRequired(JsonElement tools) => ForRequired(ToolValidation.ParseTools(tools));

    /// <summary>The schema that <paramref name="choice"/> imposes, or null for <c>none</c> and <c>auto</c> (unconstrained).</summary>
    public static JsonObject? For(ToolChoice choice, ToolDefinitions? tools) => choice.Mode switch
    {
        ToolChoiceMode.Required => ForRequired(tools ?? throw new ArgumentNullException(nameof(tools))),
        ToolChoiceMode.Function => ForNamed(tools ?? throw new ArgumentNullException(nameof(tools)), choice.FunctionName!),
        _ => null,
    };

    /// <summary>
    /// Turns output generated under <paramref name="choice"/>'s schema into tool calls: for a named function, one
    /// call whose arguments are the output; for <c>required</c>, one call per array item. Output that is not the
    /// expected JSON (generation cut short by <c>max_tokens</c>) is returned as content with no calls, never thrown.
    /// </summary>
    /// <param name="choice">A constrained choice (<see cref="ToolChoice.IsConstrained"/>).</param>
    /// <param name="constrainedOutput">The complete generated text.</param>
    /// <param name="idFormat">The template's format, which decides the id style (9 alphanumerics for Mistral).</param>
    public static ToolCallParseResult ToToolCalls(ToolChoice choice, string constrainedOutput, ToolCallFormat idFormat)
    {
        ArgumentNullException.ThrowIfNull(choice);
        ArgumentNullException.ThrowIfNull(constrainedOutput);
        using var document = ToolCallText.TryParse(constrainedOutput);
        if (document is null)
        {
            return ToolCallParseResult.ContentOnly(constrainedOutput);
        }

        var root = document.RootElement;
        var calls = new List<ParsedToolCall>();
        switch (choice.Mode)
        {
            case ToolChoiceMode.Function:
                if (root.ValueKind != JsonValueKind.Object)
                {
                    return ToolCallParseResult.ContentOnly(constrainedOutput);
                }

                calls.Add(new ParsedToolCall(ToolCallIds.New(idFormat), choice.FunctionName!, ToolCallText.ArgumentsToString(root)));
                break;
            case ToolChoiceMode.Required:
                if (root.ValueKind != JsonValueKind.Array || root.GetArrayLength() == 0)
                {
                    return ToolCallParseResult.ContentOnly(constrainedOutput);
                }

                foreach (var item in root.EnumerateArray())
                {
                    if (!ToolCallText.TryReadCall(item, null, idFormat, calls))
                    {
                        return ToolCallParseResult.ContentOnly(constrainedOutput);
                    }
                }

                break;
            default:
                throw new ArgumentException($"tool_choice '{choice.Mode}' does not constrain the output.", nameof(choice));
        }

        return new ToolCallParseResult(null, calls);
    }

    private static JsonObject ParametersOf(FunctionTool function) => function.Parameters is { } parameters
        ? JsonNode.Parse(parameters.GetRawText())!.AsObject()
        : new JsonObject { ["type"] = "object", ["properties"] = new JsonObject() };
}
