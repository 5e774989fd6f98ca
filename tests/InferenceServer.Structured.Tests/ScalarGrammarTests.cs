// Licensed under the MIT License. See LICENSE in the repository root.

using static InferenceServer.Structured.Tests.ByteProbe;

namespace InferenceServer.Structured.Tests;

/// <summary>Numbers, integers, strings (escapes, surrogates, UTF-8, lengths) and literals, each as the root value.</summary>
public sealed class ScalarGrammarTests
{
    private static readonly JsonGrammar NumberGrammar = Schema("""{"type":"number"}""");
    private static readonly JsonGrammar IntegerGrammar = Schema("""{"type":"integer"}""");
    private static readonly JsonGrammar StringGrammar = Schema("""{"type":"string"}""");

    [Theory]
    [InlineData("0")]
    [InlineData("-0")]
    [InlineData("7")]
    [InlineData("1e10")]
    [InlineData("1.5E-3")]
    [InlineData("12.50")]
    [InlineData("-1.0e+5")]
    [InlineData("0.001")]
    [InlineData("0E0")]
    [InlineData(" 42")]
    public void Number_ValidIsComplete(string text) => Valid(NumberGrammar, text);

    [Theory]
    [InlineData("01", 1)]
    [InlineData("-01", 2)]
    [InlineData("00", 1)]
    [InlineData("+1", 0)]
    [InlineData(".5", 0)]
    [InlineData("1.e5", 2)]
    [InlineData("--1", 1)]
    [InlineData("1e5.0", 3)]
    [InlineData("1 ", 1)]
    [InlineData("NaN", 0)]
    [InlineData("   1", 2)]
    public void Number_InvalidIsRefusedAtTheRightByte(string text, int at) => Invalid(NumberGrammar, text, at);

    [Theory]
    [InlineData("-")]
    [InlineData("1.")]
    [InlineData("1e")]
    [InlineData("1e+")]
    [InlineData(" ")]
    public void Number_IncompleteIsPrefix(string text) => Prefix(NumberGrammar, text);

    [Theory]
    [InlineData("0")]
    [InlineData("-0")]
    [InlineData("-12")]
    [InlineData("9007199254740993")]
    public void Integer_ValidIsComplete(string text) => Valid(IntegerGrammar, text);

    [Theory]
    [InlineData("1.0", 1)]
    [InlineData("1e5", 1)]
    [InlineData("012", 1)]
    public void Integer_FractionAndExponentAreRefused(string text, int at) => Invalid(IntegerGrammar, text, at);

    [Theory]
    [InlineData("""{"type":"integer","minimum":0}""", "0", true)]
    [InlineData("""{"type":"integer","minimum":0}""", "-0", true)]
    [InlineData("""{"type":"integer","minimum":0}""", "123456789012345", true)]
    [InlineData("""{"type":"integer","minimum":0}""", "-1", false)]
    [InlineData("""{"type":"integer","minimum":10,"maximum":20}""", "10", true)]
    [InlineData("""{"type":"integer","minimum":10,"maximum":20}""", "15", true)]
    [InlineData("""{"type":"integer","minimum":10,"maximum":20}""", "20", true)]
    [InlineData("""{"type":"integer","minimum":10,"maximum":20}""", "9", false)]
    [InlineData("""{"type":"integer","minimum":10,"maximum":20}""", "21", false)]
    [InlineData("""{"type":"integer","minimum":10,"maximum":20}""", "0", false)]
    [InlineData("""{"type":"integer","minimum":10,"maximum":20}""", "-10", false)]
    [InlineData("""{"type":"integer","minimum":10,"maximum":20}""", "100", false)]
    [InlineData("""{"type":"integer","exclusiveMinimum":-3,"exclusiveMaximum":3}""", "-2", true)]
    [InlineData("""{"type":"integer","exclusiveMinimum":-3,"exclusiveMaximum":3}""", "0", true)]
    [InlineData("""{"type":"integer","exclusiveMinimum":-3,"exclusiveMaximum":3}""", "-3", false)]
    [InlineData("""{"type":"integer","exclusiveMinimum":-3,"exclusiveMaximum":3}""", "3", false)]
    [InlineData("""{"type":"integer","maximum":-5}""", "-5", true)]
    [InlineData("""{"type":"integer","maximum":-5}""", "-123", true)]
    [InlineData("""{"type":"integer","maximum":-5}""", "-0", false)]
    [InlineData("""{"type":"integer","maximum":-5}""", "4", false)]
    [InlineData("""{"type":"integer","maximum":-5}""", "0", false)]
    [InlineData("""{"type":"integer","minimum":1.5,"maximum":1000000000}""", "2", true)]
    [InlineData("""{"type":"integer","minimum":1.5,"maximum":1000000000}""", "1000000000", true)]
    [InlineData("""{"type":"integer","minimum":1.5,"maximum":1000000000}""", "1000000001", false)]
    [InlineData("""{"type":["integer","null"],"minimum":1}""", "null", true)]
    public void IntegerBounds_AreEnforcedDigitByDigit(string schema, string text, bool valid)
    {
        if (valid)
        {
            Valid(Schema(schema), text);
        }
        else
        {
            Invalid(Schema(schema), text);
        }
    }

    [Theory]
    [InlineData("1")]
    [InlineData("-")]
    public void IntegerBounds_PrefixThatCanStillReachTheRange(string text)
    {
        JsonGrammar grammar = Schema("""{"type":"integer","minimum":-20,"maximum":-10}""");
        if (text == "1")
        {
            Invalid(grammar, text, 0);
        }
        else
        {
            Prefix(grammar, text);
            Prefix(grammar, "-1");
            Invalid(grammar, "-3", 1);
            Prefix(grammar, "-2");
            Valid(grammar, "-12");
        }
    }

    [Fact]
    public void IntegerBounds_InAnObjectEndOnlyWithinRange()
    {
        JsonGrammar grammar = Schema("""{"type":"object","properties":{"age":{"type":"integer","minimum":18,"maximum":150}},"required":["age"]}""");
        Valid(grammar, "{\"age\":150}");
        Valid(grammar, "{\"age\": 18 }");
        Invalid(grammar, "{\"age\":151}", 9);
        Invalid(grammar, "{\"age\":1}", 8);
        Invalid(grammar, "{\"age\":2}", 8);
        Invalid(grammar, "{\"age\":0", 7);
    }

    [Theory]
    [InlineData("\"\"")]
    [InlineData("\"abc\"")]
    [InlineData("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"")]
    [InlineData("\"\\u00e9\\u00E9\"")]
    [InlineData("\"\\uD83D\\uDE00\"")]
    [InlineData("\"\\ud83d\\ude00x\"")]
    [InlineData("\"é😀中\"")]
    [InlineData("\"\\u0000\"")]
    public void String_ValidIsComplete(string text) => Valid(StringGrammar, text);

    [Theory]
    [InlineData("\"\\x\"", 2)]
    [InlineData("\"\\u00g0\"", 5)]
    [InlineData("\"\\uDE00\"", 4)]          // a lone low surrogate, refused at its second hex digit
    [InlineData("\"\\uD83D\"", 7)]          // a high surrogate must be followed by a low one
    [InlineData("\"\\uD83D\\u0041\"", 9)]   // ... whose first hex digit is D
    [InlineData("\"\\uD83D\\uD83D\"", 10)]  // ... and second C-F
    [InlineData("\"a\nb\"", 2)]             // raw control characters must be escaped
    [InlineData("\"a\tb\"", 2)]
    [InlineData("'a'", 0)]
    [InlineData("\"ab\"\"", 4)]
    public void String_InvalidIsRefusedAtTheRightByte(string text, int at) => Invalid(StringGrammar, text, at);

    [Theory]
    [InlineData(new byte[] { 0x22, 0xC0, 0x80, 0x22 }, 1)]        // overlong encoding
    [InlineData(new byte[] { 0x22, 0xE0, 0x80, 0x80, 0x22 }, 2)]  // overlong three-byte form
    [InlineData(new byte[] { 0x22, 0xED, 0xA0, 0x80, 0x22 }, 2)]  // an encoded surrogate
    [InlineData(new byte[] { 0x22, 0xF4, 0x90, 0x80, 0x80, 0x22 }, 2)] // above U+10FFFF
    [InlineData(new byte[] { 0x22, 0xF5, 0x80, 0x22 }, 1)]
    [InlineData(new byte[] { 0x22, 0x80, 0x22 }, 1)]              // a lone continuation byte
    [InlineData(new byte[] { 0x22, 0xC3, 0x22 }, 2)]              // a truncated character
    [InlineData(new byte[] { 0x22, 0xE4, 0xB8, 0x41 }, 3)]
    public void String_InvalidUtf8IsRefused(byte[] bytes, int at) => Invalid(StringGrammar, bytes, at);

    [Fact]
    public void String_MultiByteCharacterSplitAcrossTokensIsAccepted()
    {
        // 😀 is F0 9F 98 80: feed it as two two-byte tokens.
        var vocabulary = new TokenVocabulary([[0x22], [0xF0, 0x9F], [0x98, 0x80], null], [3]);
        var constraint = new JsonTokenConstraint(StringGrammar, vocabulary);
        float[] logits = new float[4];
        constraint.MaskLogits(logits);
        Assert.Equal([0f, float.NegativeInfinity, float.NegativeInfinity, float.NegativeInfinity], logits);
        Assert.True(constraint.Accept(0));
        Array.Clear(logits);
        constraint.MaskLogits(logits);
        Assert.Equal([0f, 0f, float.NegativeInfinity, float.NegativeInfinity], logits);
        Assert.True(constraint.Accept(1));
        Assert.False(constraint.IsAllowed(0));
        Assert.False(constraint.IsAllowed(1));
        Assert.True(constraint.Accept(2));
        Assert.True(constraint.Accept(0));
        Assert.True(constraint.IsComplete);
        Assert.True(constraint.Accept(3));
    }

    [Theory]
    [InlineData("\"ab\"")]
    [InlineData("\"abc\"")]
    [InlineData("\"é😀\"")]
    [InlineData("\"\\u00e9x\"")]
    [InlineData("\"\\uD83D\\uDE00ab\"")]
    public void StringLength_WithinBoundsIsComplete(string text) => Valid(Schema("""{"type":"string","minLength":2,"maxLength":3}"""), text);

    [Theory]
    [InlineData("\"a\"", 2)]
    [InlineData("\"\"", 1)]
    [InlineData("\"abcd\"", 4)]
    [InlineData("\"😀😀😀😀\"", 13)]
    [InlineData("\"ab\\uD83D\\uDE00\\n\"", 15)]
    public void StringLength_OutOfBoundsIsRefused(string text, int at) => Invalid(Schema("""{"type":"string","minLength":2,"maxLength":3}"""), text, at);

    [Fact]
    public void StringLength_MultiCharacterTokensMustFitTheRoomLeft()
    {
        // Plain content tokens take the fast path inside strings: they must still respect maxLength.
        byte[][] tokens = [[(byte)'"'], "ab"u8.ToArray(), "abc"u8.ToArray(), "é😀"u8.ToArray(), "x\""u8.ToArray(), "\\n"u8.ToArray()];
        var vocabulary = new TokenVocabulary([.. tokens, null], [tokens.Length]);
        var constraint = new JsonTokenConstraint(Schema("""{"type":"string","maxLength":3}"""), vocabulary);
        float[] logits = new float[vocabulary.Size];
        Assert.True(constraint.Accept(0));
        constraint.MaskLogits(logits);
        Assert.Equal([0f, 0f, 0f, 0f, 0f, 0f, float.NegativeInfinity], logits);
        Assert.True(constraint.Accept(1)); // "ab: one code point left
        Array.Clear(logits);
        constraint.MaskLogits(logits);
        Assert.Equal([0f, float.NegativeInfinity, float.NegativeInfinity, float.NegativeInfinity, 0f, 0f, float.NegativeInfinity], logits);
        Assert.True(constraint.Accept(4)); // "abx"
        Assert.True(constraint.IsComplete);
    }

    [Fact]
    public void StringLength_ZeroMaxAllowsOnlyTheEmptyString()
    {
        JsonGrammar grammar = Schema("""{"type":"string","maxLength":0}""");
        Valid(grammar, "\"\"");
        Invalid(grammar, "\"a\"", 1);
    }

    [Theory]
    [InlineData("true")]
    [InlineData("false")]
    public void Boolean_ValidIsComplete(string text) => Valid(Schema("""{"type":"boolean"}"""), text);

    [Theory]
    [InlineData("tru", false)]
    [InlineData("True", true)]
    [InlineData("truee", true)]
    [InlineData("null", true)]
    public void Boolean_Invalid(string text, bool refused)
    {
        if (refused)
        {
            Invalid(Schema("""{"type":"boolean"}"""), text);
        }
        else
        {
            Prefix(Schema("""{"type":"boolean"}"""), text);
        }
    }

    [Fact]
    public void Null_OnlyNull()
    {
        JsonGrammar grammar = Schema("""{"type":"null"}""");
        Valid(grammar, "null");
        Invalid(grammar, "nul1", 3);
        Invalid(grammar, "0", 0);
    }

    [Theory]
    [InlineData("\"re\"")]
    [InlineData("\"red\"")]
    [InlineData("\"green\"")]
    public void EnumOfStrings_EachValueIsComplete(string text) => Valid(Schema("""{"enum":["red","green","re"]}"""), text);

    [Theory]
    [InlineData("\"r\"", 2)]
    [InlineData("\"blue\"", 1)]
    [InlineData("\"Red\"", 1)]
    [InlineData("\"\\u0072ed\"", 1)] // only the canonical spelling of an enum value
    [InlineData(" \"red\" ", 6)]
    public void EnumOfStrings_OtherStringsAreRefused(string text, int at) => Invalid(Schema("""{"enum":["red","green","re"]}"""), text, at);

    [Theory]
    [InlineData("1", true)]
    [InlineData("10", true)]
    [InlineData("-2.5", true)]
    [InlineData("100", false)]
    [InlineData("2", false)]
    [InlineData("1.0", false)]
    public void EnumOfNumbers_ExactlyTheValues(string text, bool valid)
    {
        JsonGrammar grammar = Schema("""{"type":"number","enum":[1,10,-2.5]}""");
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
    [InlineData("\"a\"")]
    [InlineData("1")]
    [InlineData("null")]
    [InlineData("true")]
    [InlineData("{\"x\":[1,\"é\\n\"]}")]
    public void EnumOfMixedValues_EachValueIsComplete(string text)
        => Valid(Schema("""{"enum":["a",1,null,true,{"x":[1,"é\n"]}]}"""), text);

    [Fact]
    public void EnumWithType_KeepsOnlyValuesOfThatType()
    {
        JsonGrammar grammar = Schema("""{"type":"string","enum":["a",1]}""");
        Valid(grammar, "\"a\"");
        Invalid(grammar, "1", 0);
    }

    [Fact]
    public void Const_OnlyThatValue()
    {
        JsonGrammar grammar = Schema("""{"const":"fixed"}""");
        Valid(grammar, "\"fixed\"");
        Invalid(grammar, "\"fixe\"", 5);
        Invalid(grammar, "\"fixed!\"", 6);
    }

    [Fact]
    public void RootScalar_EndOfSequenceAllowedWhileTheNumberCanStillGrow()
    {
        var constraint = new JsonTokenConstraint(IntegerGrammar, Vocabulary);
        Assert.True(constraint.Accept((byte)'4'));
        Assert.True(constraint.IsComplete);
        Assert.True(constraint.IsAllowed((byte)'2'));
        Assert.True(constraint.IsAllowed(Eos));
        Assert.False(constraint.IsAllowed((byte)' '));
    }
}
