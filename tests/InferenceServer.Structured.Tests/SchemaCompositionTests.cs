// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text.Json;
using static InferenceServer.Structured.Tests.ByteProbe;

namespace InferenceServer.Structured.Tests;

/// <summary>anyOf/oneOf, type lists, allOf, $ref (recursive too), unsatisfiable parts, and response_format.</summary>
public sealed class SchemaCompositionTests
{
    [Theory]
    [InlineData("\"x\"", true)]
    [InlineData("null", true)]
    [InlineData("1", false)]
    public void AnyOf_StringOrNull(string text, bool valid) => Check(Schema("""{"anyOf":[{"type":"string"},{"type":"null"}]}"""), text, valid);

    [Theory]
    [InlineData("12", true)]
    [InlineData("null", true)]
    [InlineData("1.5", false)]
    public void TypeList_IntegerOrNull(string text, bool valid) => Check(Schema("""{"type":["integer","null"]}"""), text, valid);

    [Theory]
    [InlineData("{\"a\":1,\"b\":2}", true)]
    [InlineData("{\"a\":1,\"c\":\"x\"}", true)]
    [InlineData("{\"a\":1,\"c\":2}", false)]
    [InlineData("{\"a\":1}", false)]
    [InlineData("{\"a\":1,\"b\":\"x\"}", false)]
    public void OneOf_AmbiguousObjectsAreTrackedTogether(string text, bool valid)
    {
        JsonGrammar grammar = Schema("""
            {"oneOf":[
              {"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"]},
              {"type":"object","properties":{"a":{"type":"integer"},"c":{"type":"string"}},"required":["a","c"]}]}
            """);
        Check(grammar, text, valid);
    }

    [Fact]
    public void AllOf_WithOneSchemaIsThatSchema()
    {
        JsonGrammar grammar = Schema("""{"allOf":[{"type":"integer"}],"description":"a count"}""");
        Valid(grammar, "3");
        Invalid(grammar, "\"3\"", 0);
    }

    [Fact]
    public void Ref_ToDefsAndDefinitions()
    {
        JsonGrammar grammar = Schema("""
            {"type":"object","properties":{"x":{"$ref":"#/$defs/pos"},"y":{"$ref":"#/definitions/name"}},"required":["x","y"],
             "$defs":{"pos":{"type":"integer"}},"definitions":{"name":{"enum":["a","b"]}}}
            """);
        Valid(grammar, "{\"x\":1,\"y\":\"b\"}");
        Invalid(grammar, "{\"x\":1,\"y\":\"c\"}", 12);
    }

    [Theory]
    [InlineData("{\"value\":1,\"children\":[]}", true)]
    [InlineData("{\"value\":1,\"children\":[{\"value\":2,\"children\":[{\"value\":3,\"children\":[]}]},{\"value\":4,\"children\":[]}]}", true)]
    [InlineData("{\"value\":1,\"children\":[{\"value\":2}]}", false)]
    [InlineData("{\"value\":1,\"children\":[1]}", false)]
    public void Ref_RecursiveTree(string text, bool valid)
    {
        JsonGrammar grammar = Schema("""
            {"$defs":{"node":{"type":"object","properties":{"value":{"type":"integer"},
              "children":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["value","children"]}},
             "$ref":"#/$defs/node"}
            """);
        Check(grammar, text, valid);
    }

    [Fact]
    public void Ref_ToTheRoot()
    {
        JsonGrammar grammar = Schema("""{"type":"object","properties":{"next":{"anyOf":[{"$ref":"#"},{"type":"null"}]}},"required":["next"]}""");
        Valid(grammar, "{\"next\":{\"next\":{\"next\":null}}}");
        Invalid(grammar, "{\"next\":{}}", 9);
    }

    [Fact]
    public void Unsatisfiable_RequiredSelfRecursionIsRefused()
    {
        var error = Assert.Throws<ArgumentException>(() => Schema("""{"type":"object","properties":{"self":{"$ref":"#"}},"required":["self"]}"""));
        Assert.Contains("no finite document", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unsatisfiable_OptionalPartIsNeverEntered()
    {
        JsonGrammar grammar = Schema("""
            {"type":"object","properties":{"bad":{"$ref":"#/$defs/loop"},"ok":{"type":"integer"}},
             "$defs":{"loop":{"type":"object","properties":{"again":{"$ref":"#/$defs/loop"}},"required":["again"]}}}
            """);
        Valid(grammar, "{}");
        Valid(grammar, "{\"ok\":1}");
        Invalid(grammar, "{\"b", 2);
    }

    [Fact]
    public void Unsatisfiable_AnyOfAlternativeIsDropped()
    {
        JsonGrammar grammar = Schema("""
            {"anyOf":[{"$ref":"#/$defs/loop"},{"type":"null"}],
             "$defs":{"loop":{"type":"array","prefixItems":[{"$ref":"#/$defs/loop"}],"minItems":1}}}
            """);
        Valid(grammar, "null");
        Invalid(grammar, "[", 0);
    }

    [Theory]
    [InlineData("""{"$defs":{"a":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}""")]
    [InlineData("""{"$defs":{"a":{"anyOf":[{"$ref":"#/$defs/b"}]},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}""")]
    public void Ref_CycleWithoutProgressIsRefused(string schema)
    {
        var error = Assert.Throws<ArgumentException>(() => Schema(schema));
        Assert.Contains("cycle", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Ref_MissingTargetIsRefused()
    {
        var error = Assert.Throws<ArgumentException>(() => Schema("""{"$ref":"#/$defs/missing"}"""));
        Assert.Contains("#/$defs/missing", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Schema_TrueAndEmptyAreAnyValue()
    {
        Valid(Schema("true"), "[1,\"a\"]");
        Valid(Schema("{}"), "\"a\"");
        Valid(Schema("""{"description":"anything"}"""), "null");
    }

    [Fact]
    public void ResponseFormat_TextJsonObjectAndJsonSchema()
    {
        Assert.Null(JsonGrammar.FromResponseFormat(Parse("""{"type":"text"}""")));
        Assert.Same(JsonGrammar.AnyObject, JsonGrammar.FromResponseFormat(Parse("""{"type":"json_object"}""")));
        JsonGrammar strict = JsonGrammar.FromResponseFormat(Parse("""
            {"type":"json_schema","json_schema":{"name":"p","strict":true,
             "schema":{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a"]}}}
            """))!;
        Invalid(strict, "{\"a\":1}", 6);
        Valid(strict, "{\"a\":1,\"b\":2}");
        JsonGrammar loose = JsonGrammar.FromResponseFormat(Parse("""
            {"type":"json_schema","json_schema":{"name":"p",
             "schema":{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a"]}}}
            """))!;
        Valid(loose, "{\"a\":1}");
    }

    [Theory]
    [InlineData("""{"type":"json"}""", "json")]
    [InlineData("""{"type":"json_schema"}""", "json_schema")]
    [InlineData("""{"type":"json_schema","json_schema":{"schema":{},"strict":"yes"}}""", "strict")]
    [InlineData("""[]""", "response_format")]
    public void ResponseFormat_MalformedIsRefusedNamingTheField(string json, string named)
    {
        var error = Assert.Throws<ArgumentException>(() => JsonGrammar.FromResponseFormat(Parse(json)));
        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }

    private static JsonElement Parse(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }

    private static void Check(JsonGrammar grammar, string text, bool valid)
    {
        if (valid)
        {
            Valid(grammar, text);
        }
        else
        {
            Invalid(grammar, text);
        }
    }
}
