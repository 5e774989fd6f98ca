// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text.Json;
using InferenceServer.Structured.Internal;

namespace InferenceServer.Structured;

/// <summary>
/// A compiled JSON grammar: the documents that OpenAI's <c>response_format</c> allows, either any JSON object
/// (<c>json_object</c>) or the documents a JSON schema accepts (<c>json_schema</c>). Immutable and thread-safe: one
/// instance can constrain any number of sequences, each through its own <see cref="JsonTokenConstraint"/>.
/// </summary>
/// <remarks>
/// The grammar accepts at most <see cref="MaxWhitespaceRun"/> whitespace characters before the document and in each
/// place inside it where JSON allows whitespace, so a model cannot loop on whitespace; nothing may follow the
/// document but end-of-sequence. Object properties come in declaration order. Enum and const values, and property
/// names, are accepted only in their canonical form (compact, minimal escapes, raw UTF-8). See ARCHITECTURE.md.
/// </remarks>
public sealed class JsonGrammar
{
    /// <summary>The most consecutive whitespace characters (space, tab, CR, LF) accepted anywhere: 2.</summary>
    internal const int MaxWhitespaceRun = 2;

    private static readonly Lazy<JsonGrammar> AnyObjectGrammar = new(() => new JsonGrammar(SchemaCompiler.AnyObject(), SchemaLimits.Default));

    private JsonGrammar(GrammarNode[] nodes, SchemaLimits limits)
    {
        Nodes = nodes;
        Limits = limits;
    }

    /// <summary>Any JSON object (<c>{"type": "json_object"}</c>): the top level must be an object; values are any JSON.</summary>
    public static JsonGrammar AnyObject => AnyObjectGrammar.Value;

    /// <summary>The compiled nodes; node 0 is the root.</summary>
    internal GrammarNode[] Nodes { get; }

    /// <summary>The limits it was compiled under; <see cref="SchemaLimits.MaxMaskWork"/> bounds each mask.</summary>
    public SchemaLimits Limits { get; }

    /// <summary>Compiles a JSON schema.</summary>
    /// <param name="schema">The schema, as in <c>response_format.json_schema.schema</c>.</param>
    /// <param name="strict">
    /// OpenAI's <c>json_schema.strict</c>. True: every declared property is required whatever <c>required</c> says.
    /// False: properties not in <c>required</c> may be left out. Either way, absent <c>additionalProperties</c> means
    /// false (only declared properties, as OpenAI's strict mode demands) when properties are declared, and any
    /// properties when none is (so <c>{"type":"object"}</c> is any object).
    /// </param>
    /// <param name="limits">The compile and mask budget; null for <see cref="SchemaLimits.Default"/>.</param>
    /// <returns>The grammar.</returns>
    /// <exception cref="SchemaNotSupportedException">The schema uses a keyword that is not enforced (such as <c>pattern</c>).</exception>
    /// <exception cref="SchemaLimitExceededException">The schema exceeds one of <paramref name="limits"/>.</exception>
    /// <exception cref="ArgumentException">The schema is malformed, refers to what does not exist, or accepts no finite document.</exception>
    public static JsonGrammar FromSchema(JsonElement schema, bool strict = false, SchemaLimits? limits = null)
    {
        if (schema.ValueKind == JsonValueKind.Undefined)
        {
            throw new ArgumentException("The JSON schema is missing (an undefined JSON element).", nameof(schema));
        }

        limits ??= SchemaLimits.Default;
        return new JsonGrammar(SchemaCompiler.Compile(schema, strict, limits), limits);
    }

    /// <summary>
    /// Builds the grammar of an OpenAI <c>response_format</c> object: <c>{"type":"text"}</c> gives null (no
    /// constraint), <c>{"type":"json_object"}</c> gives <see cref="AnyObject"/>, and
    /// <c>{"type":"json_schema","json_schema":{"name":..,"schema":{..},"strict":..}}</c> compiles the schema (an absent
    /// schema means any JSON object).
    /// </summary>
    /// <param name="responseFormat">The <c>response_format</c> value.</param>
    /// <returns>The grammar, or null for plain text.</returns>
    /// <exception cref="SchemaNotSupportedException">The schema uses a keyword that is not enforced.</exception>
    /// <exception cref="ArgumentException">The object is malformed; the message names the field.</exception>
    internal static JsonGrammar? FromResponseFormat(JsonElement responseFormat)
    {
        if (responseFormat.ValueKind != JsonValueKind.Object
            || !responseFormat.TryGetProperty("type", out JsonElement type) || type.ValueKind != JsonValueKind.String)
        {
            throw new ArgumentException("response_format must be an object with a string 'type'.", nameof(responseFormat));
        }

        switch (type.GetString())
        {
            case "text":
                return null;
            case "json_object":
                return AnyObject;
            case "json_schema":
                break;
            default:
                throw new ArgumentException(
                    $"response_format.type '{type.GetString()}' is not supported (use 'text', 'json_object' or 'json_schema').",
                    nameof(responseFormat));
        }

        if (!responseFormat.TryGetProperty("json_schema", out JsonElement jsonSchema) || jsonSchema.ValueKind != JsonValueKind.Object)
        {
            throw new ArgumentException("response_format.json_schema must be an object when type is 'json_schema'.", nameof(responseFormat));
        }

        bool strict = false;
        if (jsonSchema.TryGetProperty("strict", out JsonElement strictValue) && strictValue.ValueKind != JsonValueKind.Null)
        {
            if (strictValue.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            {
                throw new ArgumentException("response_format.json_schema.strict must be a boolean.", nameof(responseFormat));
            }

            strict = strictValue.ValueKind == JsonValueKind.True;
        }

        if (!jsonSchema.TryGetProperty("schema", out JsonElement schema) || schema.ValueKind == JsonValueKind.Null)
        {
            return AnyObject;
        }

        return FromSchema(schema, strict);
    }
}
