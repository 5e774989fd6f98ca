// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;

namespace InferenceServer.OpenAi;

/// <summary>
/// The request's <c>response_format</c>: free text, any JSON object (<c>json_object</c>), or JSON matching a schema
/// (<c>json_schema</c>); the JSON forms are enforced by constrained decoding.
/// </summary>
internal sealed record ResponseFormat
{
    /// <summary>Free text (the default).</summary>
    public static ResponseFormat Text { get; } = new();

    /// <summary>Whether output is constrained to JSON.</summary>
    public bool IsJson { get; init; }

    /// <summary>The schema for <c>json_schema</c>; null for <c>json_object</c> and text.</summary>
    public JsonElement? Schema { get; init; }

    /// <summary>OpenAI's <c>json_schema.strict</c>: every declared property is required.</summary>
    public bool Strict { get; init; }

    /// <summary>Reads <c>response_format</c>; absent or <c>{"type": "text"}</c> is <see cref="Text"/>.</summary>
    public static ResponseFormat Read(JsonRequestReader reader)
    {
        if (!reader.TryGet("response_format", out var element))
        {
            return Text;
        }

        var format = new JsonRequestReader(element, "response_format");
        var type = format.String("type") ?? throw new RequestValidationException("response_format.type", "'response_format.type' is required: 'text', 'json_object' or 'json_schema'.");
        switch (type)
        {
            case "text":
                return Text;
            case "json_object":
                return new ResponseFormat { IsJson = true };
            case "json_schema":
                if (!format.TryGet("json_schema", out var jsonSchema) || jsonSchema.ValueKind != JsonValueKind.Object)
                {
                    throw new RequestValidationException("response_format.json_schema", "'response_format.json_schema' (an object with 'name' and 'schema') is required when the type is 'json_schema'.");
                }

                var inner = new JsonRequestReader(jsonSchema, "response_format.json_schema");
                _ = inner.String("name");
                var strict = inner.Bool("strict") ?? false;
                if (!inner.TryGet("schema", out var schema))
                {
                    // OpenAI allows a missing schema; it then means any JSON object.
                    return new ResponseFormat { IsJson = true };
                }

                return schema.ValueKind is JsonValueKind.Object or JsonValueKind.True
                    ? new ResponseFormat { IsJson = true, Schema = schema.Clone(), Strict = strict }
                    : throw new RequestValidationException("response_format.json_schema.schema", $"'response_format.json_schema.schema' must be a JSON Schema object, not {JsonRequestReader.Describe(schema)}.");
            default:
                throw new RequestValidationException("response_format.type", $"'response_format.type' must be 'text', 'json_object' or 'json_schema', not '{type}'.");
        }
    }
}
