// Licensed under the MIT License. See LICENSE in the repository root.

using static InferenceServer.Structured.Tests.ByteProbe;

namespace InferenceServer.Structured.Tests;

/// <summary>json_object, objects with declared properties, arrays, and whitespace bounds.</summary>
public sealed class ContainerGrammarTests
{
    private const string Person = """
        {"type":"object","properties":{
          "name":{"type":"string"},
          "age":{"type":"integer"},
          "tags":{"type":"array","items":{"type":"string"}}},
         "required":["name","age"]}
        """;

    [Theory]
    [InlineData("{}")]
    [InlineData("{\"a\":1}")]
    [InlineData("{\"a\":[1,2,{\"b\":null}],\"c\":\"x\",\"d\":{\"e\":[]}}")]
    [InlineData(" {\"a\":true}")]
    [InlineData("\n\n{}")]
    [InlineData("{ \"a\" : 1 , \"b\" :\t[ ] }")]
    [InlineData("{\"\\u00e9\\n\":-1.5e3}")]
    [InlineData("{\"a\":1,\"a\":2}")]
    public void AnyObject_ValidIsComplete(string text) => Valid(JsonGrammar.AnyObject, text);

    [Theory]
    [InlineData("[]", 0)]
    [InlineData("\"x\"", 0)]
    [InlineData("1", 0)]
    [InlineData("   {}", 2)]
    [InlineData("{\"a\":1,}", 7)]
    [InlineData("{,}", 1)]
    [InlineData("{\"a\" 1}", 5)]
    [InlineData("{\"a\":1}x", 7)]
    [InlineData("{} ", 2)]
    [InlineData("{\"a\":   1}", 7)]
    [InlineData("{\"a\":[1,]}", 8)]
    [InlineData("{\"a\":01}", 6)]
    [InlineData("{a:1}", 1)]
    public void AnyObject_InvalidIsRefusedAtTheRightByte(string text, int at) => Invalid(JsonGrammar.AnyObject, text, at);

    [Theory]
    [InlineData("{")]
    [InlineData("{\"a\":")]
    [InlineData("{\"a\":[{\"b\":")]
    [InlineData("{\"a\":1")]
    public void AnyObject_IncompleteIsPrefix(string text) => Prefix(JsonGrammar.AnyObject, text);

    [Fact]
    public void AnyObject_DeepNestingIsAccepted()
    {
        string text = "{\"a\":" + new string('[', 200) + "{}" + new string(']', 200) + "}";
        Valid(JsonGrammar.AnyObject, text);
    }

    [Theory]
    [InlineData("{\"name\":\"x\",\"age\":3}")]
    [InlineData("{\"name\":\"x\",\"age\":3,\"tags\":[\"a\",\"b\"]}")]
    [InlineData("{ \"name\": \"x\", \"age\": -3, \"tags\": [] }")]
    public void Object_DeclaredPropertiesInOrder(string text) => Valid(Schema(Person), text);

    [Theory]
    [InlineData("{\"age\":3,\"name\":\"x\"}", 2)]            // declaration order
    [InlineData("{\"name\":\"x\"}", 11)]                     // age is required
    [InlineData("{\"name\":\"x\",\"age\":3,\"extra\":1}", 21)] // no extra properties
    [InlineData("{\"name\":\"x\",\"name\":\"y\"}", 13)]         // no repeats
    [InlineData("{\"name\":3}", 8)]
    [InlineData("{\"name\":\"x\",\"age\":3.5}", 19)]
    [InlineData("{\"nam\":", 5)]
    [InlineData("{\"name\":\"x\",\"age\":3,\"tags\":[1]}", 28)]
    public void Object_Invalid(string text, int at) => Invalid(Schema(Person), text, at);

    [Fact]
    public void Object_StrictMakesEveryPropertyRequired()
    {
        JsonGrammar grammar = Schema(Person, strict: true);
        Invalid(grammar, "{\"name\":\"x\",\"age\":3}", 19);
        Valid(grammar, "{\"name\":\"x\",\"age\":3,\"tags\":[]}");
    }

    [Theory]
    [InlineData("{\"b\":1}", true)]
    [InlineData("{\"a\":1,\"b\":2}", true)]
    [InlineData("{\"b\":1,\"c\":2}", true)]
    [InlineData("{\"a\":1,\"b\":2,\"c\":3}", true)]
    [InlineData("{\"c\":1}", false)] // skipping the required b
    [InlineData("{\"a\":1}", false)]
    [InlineData("{}", false)]
    public void Object_OptionalPropertiesMayBeSkipped(string text, bool valid)
    {
        JsonGrammar grammar = Schema("""
            {"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"},"c":{"type":"integer"}},"required":["b"]}
            """);
        if (valid)
        {
            Valid(grammar, text);
        }
        else
        {
            Invalid(grammar, text);
        }
    }

    [Theory]
    [InlineData("{\"name\":\"x\",\"age\":1,\"zzz\":[1,2]}", true)]
    [InlineData("{\"zz\":1,\"name\":\"x\",\"age\":2}", true)]
    [InlineData("{\"na\":1,\"name\":\"x\",\"age\":1}", true)]    // an extra key that is a prefix of a declared one
    [InlineData("{\"names\":1,\"name\":\"x\",\"age\":1}", true)] // ... or extends one
    [InlineData("{\"é\":1,\"name\":\"x\",\"age\":1}", true)]
    [InlineData("{\"name\":\"x\",\"age\":1,\"name\":\"y\"}", false)] // a declared key is not an extra key
    [InlineData("{\"n\\u0061me\":\"x\",\"age\":1}", false)]         // extra keys beside declared ones have no escapes
    [InlineData("{\"age\":1,\"name\":\"x\"}", false)]
    public void Object_AdditionalPropertiesTrue(string text, bool valid)
    {
        JsonGrammar grammar = Schema("""
            {"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"],"additionalProperties":true}
            """);
        if (valid)
        {
            Valid(grammar, text);
        }
        else
        {
            Invalid(grammar, text);
        }
    }

    [Fact]
    public void Object_AdditionalPropertiesSchemaAppliesToExtraValues()
    {
        JsonGrammar grammar = Schema("""{"type":"object","additionalProperties":{"type":"integer"}}""");
        Valid(grammar, "{\"a\":1,\"b\":2}");
        Valid(grammar, "{\"\\\"\":1}");
        Invalid(grammar, "{\"a\":\"x\"}", 5);
    }

    [Fact]
    public void Object_WithoutPropertiesIsAnyObject()
    {
        JsonGrammar grammar = Schema("""{"type":"object"}""");
        Valid(grammar, "{}");
        Valid(grammar, "{\"a\":{\"b\":[1]}}");
        Invalid(grammar, "[]", 0);
    }

    [Fact]
    public void Object_AdditionalPropertiesFalseWithoutPropertiesIsEmptyObject()
    {
        JsonGrammar grammar = Schema("""{"type":"object","additionalProperties":false}""");
        Valid(grammar, "{}");
        Invalid(grammar, "{\"a\":1}", 1);
    }

    [Fact]
    public void Object_NamesWithEscapesAndUnicodeAreMatchedCanonically()
    {
        JsonGrammar grammar = Schema("""{"type":"object","properties":{"a\"b":{"type":"integer"},"é":{"type":"integer"}},"required":["a\"b","é"]}""");
        Valid(grammar, "{\"a\\\"b\":1,\"é\":2}");
        Invalid(grammar, "{\"a\\\"b\":1,\"\\u00e9\":2}", 11);
    }

    [Theory]
    [InlineData("[1]", true)]
    [InlineData("[1,2,3]", true)]
    [InlineData("[ 1 , 2 ]", true)]
    [InlineData("[]", false)]
    [InlineData("[1,2,3,4]", false)]
    [InlineData("[1,]", false)]
    [InlineData("[1 2]", false)]
    [InlineData("[\"1\"]", false)]
    public void Array_ItemsAndCounts(string text, bool valid)
    {
        JsonGrammar grammar = Schema("""{"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3}""");
        if (valid)
        {
            Valid(grammar, text);
        }
        else
        {
            Invalid(grammar, text);
        }
    }

    [Theory]
    [InlineData("[\"a\",1]", true)]
    [InlineData("[\"a\"]", true)]
    [InlineData("[]", true)]
    [InlineData("[\"a\",1,2]", false)]
    [InlineData("[1]", false)]
    public void Array_PrefixItemsWithoutMoreItems(string text, bool valid)
    {
        JsonGrammar grammar = Schema("""{"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false}""");
        if (valid)
        {
            Valid(grammar, text);
        }
        else
        {
            Invalid(grammar, text);
        }
    }

    [Fact]
    public void Array_PrefixItemsThenAnyItems()
    {
        JsonGrammar grammar = Schema("""{"type":"array","prefixItems":[{"type":"boolean"}],"minItems":2}""");
        Valid(grammar, "[true,{\"x\":[]},\"s\",null]");
        Invalid(grammar, "[true]", 5);
        Invalid(grammar, "[1]", 1);
    }

    [Fact]
    public void Array_LongArrayRepeatsItsState()
    {
        string text = "[" + string.Join(",", Enumerable.Repeat("\"ab\"", 300)) + "]";
        Valid(Schema("""{"type":"array","items":{"type":"string","maxLength":2},"minItems":2}"""), text);
    }
}
