// Licensed under the MIT License. See LICENSE in the repository root.

using static InferenceServer.Structured.Tests.ByteProbe;

namespace InferenceServer.Structured.Tests;

/// <summary>Keywords that are not enforced are refused, naming the keyword and where it is; malformed schemas too.</summary>
public sealed class SchemaRefusalTests
{
    [Theory]
    [InlineData("""{"type":"string","pattern":"^a+$"}""", "pattern", "#")]
    [InlineData("""{"type":"object","properties":{"when":{"type":"string","format":"date-time"}}}""", "format", "#/properties/when")]
    [InlineData("""{"type":"number","minimum":0}""", "minimum", "#")]
    [InlineData("""{"minimum":0}""", "minimum", "#")]
    [InlineData("""{"type":["number","integer"],"exclusiveMaximum":1}""", "exclusiveMaximum", "#")]
    [InlineData("""{"type":"integer","minimum":1e12}""", "minimum", "#")]
    [InlineData("""{"type":"number","maximum":10}""", "maximum", "#")]
    [InlineData("""{"type":"number","exclusiveMinimum":0}""", "exclusiveMinimum", "#")]
    [InlineData("""{"type":"integer","multipleOf":2}""", "multipleOf", "#")]
    [InlineData("""{"not":{"type":"null"}}""", "not", "#")]
    [InlineData("""{"if":{"type":"string"},"then":{"minLength":1}}""", "if", "#")]
    [InlineData("""{"type":"object","patternProperties":{"^x":{}}}""", "patternProperties", "#")]
    [InlineData("""{"type":"object","minProperties":1}""", "minProperties", "#")]
    [InlineData("""{"type":"array","items":{"type":"integer"},"uniqueItems":true}""", "uniqueItems", "#")]
    [InlineData("""{"type":"array","items":[{"type":"integer"}]}""", "items", "#")]
    [InlineData("""{"type":"array","contains":{"type":"integer"}}""", "contains", "#")]
    [InlineData("""{"type":"string","nullable":true}""", "nullable", "#")]
    [InlineData("""{"$defs":{"a":{"type":"string","foo":1}},"$ref":"#/$defs/a"}""", "foo", "#/$defs/a")]
    [InlineData("""{"$ref":"https://example.com/schema.json"}""", "$ref", "#")]
    [InlineData("""{"allOf":[{"type":"string"},{"minLength":1}]}""", "allOf", "#")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"integer"}},"required":["b"]}""", "required", "#")]
    [InlineData("""{"$ref":"#/$defs/a","type":"object","$defs":{"a":{}}}""", "type", "#")]
    [InlineData("""{"type":"string","minItems":1}""", "minItems", "#")]
    [InlineData("""{"enum":["a","bb"],"maxLength":1}""", "maxLength", "#")]
    [InlineData("""{"type":"object","properties":{"a/b":{"type":"array","items":{"type":"string","pattern":"x"}}}}""", "pattern", "#/properties/a~1b/items")]
    public void Unsupported_IsRefusedNamingKeywordAndPath(string schema, string keyword, string path)
    {
        var error = Assert.Throws<SchemaNotSupportedException>(() => Schema(schema));
        Assert.Equal(keyword, error.Keyword);
        Assert.Equal(path, error.SchemaPath);
        Assert.Contains($"'{keyword}'", error.Message, StringComparison.Ordinal);
        Assert.Contains($"'{path}'", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"type":"string","minLength":-1}""", "minLength")]
    [InlineData("""{"type":"string","minLength":3,"maxLength":2}""", "minLength")]
    [InlineData("""{"type":"array","minItems":1.5}""", "minItems")]
    [InlineData("""{"type":"integer","minimum":5,"maximum":4}""", "minimum and maximum")]
    [InlineData("""{"type":"integer","exclusiveMinimum":1,"exclusiveMaximum":2}""", "minimum and maximum")]
    [InlineData("""{"type":"integer","maximum":"3"}""", "maximum")]
    [InlineData("""{"type":"foo"}""", "foo")]
    [InlineData("""{"type":5}""", "type")]
    [InlineData("""{"type":"object","properties":[]}""", "properties")]
    [InlineData("""{"type":"object","required":"a"}""", "required")]
    [InlineData("""{"anyOf":[]}""", "anyOf")]
    [InlineData("""{"enum":[]}""", "enum")]
    [InlineData("""{"type":"integer","enum":["a"]}""", "enum")]
    [InlineData("""false""", "false")]
    [InlineData("""3""", "must be an object")]
    public void Malformed_IsRefusedNamingTheProblem(string schema, string named)
    {
        var error = Assert.Throws<ArgumentException>(() => Schema(schema));
        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Undefined_IsRefused()
        => Assert.Throws<ArgumentException>(() => JsonGrammar.FromSchema(default));

    [Fact]
    public void Annotations_AreIgnored()
    {
        JsonGrammar grammar = Schema("""
            {"$schema":"https://json-schema.org/draft/2020-12/schema","title":"T","description":"d","default":1,
             "examples":[1],"$comment":"c","deprecated":false,"x-vendor":{"any":1},"type":"integer","uniqueItems":false}
            """);
        Valid(grammar, "1");
    }
}
