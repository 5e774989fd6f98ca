// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text;
using System.Text.Json;

namespace InferenceServer.Structured.Tests;

/// <summary>The constraint over the real tiny-pycoder vocabulary: masks, and seeded random walks that must end in valid documents.</summary>
public sealed class PycoderConstraintTests
{
    private static readonly Dictionary<string, (string Schema, bool Strict)> Schemas = new()
    {
        ["person"] = ("""
            {"type":"object","properties":{
              "name":{"type":"string","minLength":1,"maxLength":12},
              "age":{"type":"integer","minimum":0,"maximum":150},
              "email":{"anyOf":[{"type":"string"},{"type":"null"}]},
              "role":{"enum":["admin","user","guest"]},
              "scores":{"type":"array","items":{"type":"number"},"maxItems":4},
              "active":{"type":"boolean"},
              "address":{"type":"object","properties":{"city":{"type":"string"},"zip":{"type":"string","maxLength":5}},
                "required":["city","zip"],"additionalProperties":false}},
             "required":["name","age","email","role","scores","active","address"],"additionalProperties":false}
            """, true),
        ["tree"] = ("""
            {"$defs":{"node":{"type":"object","properties":{"label":{"type":"string","maxLength":8},
              "children":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":3}},"required":["label"]}},
             "$ref":"#/$defs/node"}
            """, false),
        ["extras"] = ("""
            {"type":"object","properties":{"id":{"type":"integer"},"kind":{"const":"item"}},
             "additionalProperties":{"type":["string","integer"]}}
            """, false),
        ["tuple"] = ("""
            {"type":"array","prefixItems":[{"type":"string"},{"type":"integer"},{"type":"boolean"}],"items":false,"minItems":3}
            """, false),
    };

    // Tokens a walk prefers once it has run long enough, so that it ends: the string closer first (inside a string
    // '}' is just a character), then the container closers, then short values and separators.
    private static readonly string[] Finishers = ["\"", "}", "]", "0", "null", "true", ",", ":", "a"];

    public static TheoryData<string, int> Walks()
    {
        var data = new TheoryData<string, int>();
        foreach (string name in (string[])["json_object", .. Schemas.Keys])
        {
            for (int seed = 1; seed <= 4; seed++)
            {
                data.Add(name, seed);
            }
        }

        return data;
    }

    [Fact]
    public void TokenBytes_AgreeWithTheTokenizersDecoding()
    {
        Assert.Equal(4096, Pycoder.TokenBytes.Length);
        Assert.Null(Pycoder.TokenBytes[Pycoder.EndOfText]);
        Assert.Null(Pycoder.TokenBytes[Pycoder.Pad]);
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        int checkedCount = 0;
        for (int id = 2; id < Pycoder.TokenBytes.Length; id++)
        {
            byte[] bytes = Pycoder.TokenBytes[id]!;
            string text;
            try
            {
                text = strict.GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                continue; // a piece of a multi-byte character
            }

            Assert.Equal(Pycoder.Tokenizer.Decode([id]), text);
            checkedCount++;
        }

        Assert.True(checkedCount > 3500);
    }

    [Theory]
    [MemberData(nameof(Walks))]
    public void RandomWalk_EndsInAValidDocument(string schemaName, int seed)
    {
        JsonGrammar grammar;
        JsonElement schema = default;
        bool strict = false;
        if (schemaName == "json_object")
        {
            grammar = JsonGrammar.AnyObject;
        }
        else
        {
            (string json, strict) = Schemas[schemaName];
            schema = JsonDocument.Parse(json).RootElement;
            grammar = JsonGrammar.FromSchema(schema, strict);
        }

        string text = Walk(grammar, seed);
        using JsonDocument document = JsonDocument.Parse(text);
        Assert.Equal(text.TrimEnd(), text);
        if (schemaName == "json_object")
        {
            Assert.Equal(JsonValueKind.Object, document.RootElement.ValueKind);
        }
        else
        {
            Assert.True(SchemaValidator.Validate(document.RootElement, schema, strict) is null,
                $"{SchemaValidator.Validate(document.RootElement, schema, strict)} in {text}");
        }
    }

    [Fact]
    public void MaskLogits_AtTheStartOfJsonObjectOnlyBraceAndWhitespace()
    {
        var constraint = new JsonTokenConstraint(JsonGrammar.AnyObject, Pycoder.Vocabulary);
        float[] logits = Masked(constraint);
        int allowed = 0;
        for (int id = 0; id < logits.Length; id++)
        {
            if (logits[id] == 0)
            {
                allowed++;
                byte[] bytes = Pycoder.TokenBytes[id]!;
                string text = Encoding.UTF8.GetString(bytes);
                string rest = text.TrimStart(' ', '\n', '\t', '\r');
                Assert.True(rest.Length == 0 || rest.StartsWith('{'), $"'{text}' allowed at the start");
                Assert.True(text.Length - text.TrimStart().Length <= JsonGrammar.MaxWhitespaceRun, $"'{text}' has too much whitespace");
            }
        }

        Assert.InRange(allowed, 3, 100);
        Assert.Equal(0, logits[Pycoder.Id("{")]);
        Assert.Equal(0, logits[Pycoder.Id(" {")]);
        Assert.Equal(0, logits[Pycoder.Id("\n")]);
        foreach (string masked in (string[])["def", "import", "[", "\"", "   ", "(", "null"])
        {
            Assert.Equal(float.NegativeInfinity, logits[Pycoder.Id(masked)]);
        }

        Assert.Equal(float.NegativeInfinity, logits[Pycoder.EndOfText]);
        Assert.Equal(float.NegativeInfinity, logits[Pycoder.Pad]);
    }

    [Fact]
    public void MaskLogits_InsideAnObjectFollowsTheGrammar()
    {
        var constraint = new JsonTokenConstraint(JsonGrammar.AnyObject, Pycoder.Vocabulary);
        foreach (int id in Pycoder.Tokenizer.Encode("{\"a\": 1"))
        {
            Assert.True(constraint.Accept(id), $"token {id} refused");
        }

        float[] logits = Masked(constraint);
        foreach (string allowed in (string[])["}", ",", "0", ".", " "])
        {
            Assert.Equal(0, logits[Pycoder.Id(allowed)]);
        }

        foreach (string masked in (string[])["]", ":", "\"", "a", "])", "\"}"])
        {
            Assert.Equal(float.NegativeInfinity, logits[Pycoder.Id(masked)]);
        }

        Assert.Equal(float.NegativeInfinity, logits[Pycoder.EndOfText]);
        Assert.False(constraint.Accept(Pycoder.Id("]")));
        Assert.True(constraint.Accept(Pycoder.Id("}")));
        Assert.True(constraint.IsComplete);

        logits = Masked(constraint);
        Assert.Equal(0, logits[Pycoder.EndOfText]);
        Assert.Equal(1, logits.Count(l => l == 0));
        Assert.True(constraint.Accept(Pycoder.EndOfText));
        Assert.True(constraint.IsEnded);
        Assert.False(constraint.Accept(Pycoder.Id("}")));
    }

    [Fact]
    public void MaskLogits_InsideAStringRefusesRawControlCharactersAndAllowsClosers()
    {
        var constraint = new JsonTokenConstraint(JsonGrammar.AnyObject, Pycoder.Vocabulary);
        foreach (string token in (string[])["{", "\"", "a", "\":", " \""])
        {
            Assert.True(constraint.Accept(Pycoder.Id(token)), token);
        }

        float[] logits = Masked(constraint);
        Assert.Equal(float.NegativeInfinity, logits[Pycoder.Id("\n")]);
        foreach (string allowed in (string[])["abc", "def", "\\", "\"}", "\"", "   "])
        {
            Assert.Equal(0, logits[Pycoder.Id(allowed)]);
        }

        Assert.Equal(float.NegativeInfinity, logits[Pycoder.Id("\"]")]);

        // The state inside a string repeats, so the cached mask must equal a fresh computation.
        Assert.True(constraint.Accept(Pycoder.Id("abc")));
        Assert.Equal(logits, Masked(constraint));
    }

    [Fact]
    public void MaskLogits_MasksIdsPastTheVocabularyAndRefusesShortLogits()
    {
        var constraint = new JsonTokenConstraint(JsonGrammar.AnyObject, Pycoder.Vocabulary);
        float[] padded = new float[4100];
        constraint.MaskLogits(padded);
        Assert.All(padded[4096..], l => Assert.Equal(float.NegativeInfinity, l));
        Assert.Throws<ArgumentException>(() => constraint.MaskLogits(new float[4095]));
        Assert.False(constraint.Accept(4096));
        Assert.False(constraint.Accept(-1));
    }

    // The mask (cached, with the plain-string fast path) equals a full walk of the vocabulary trie.
    private static void AssertMaskMatchesReference(JsonTokenConstraint constraint, float[] logits)
    {
        ulong[] fast = new ulong[(Pycoder.Vocabulary.Size + 63) / 64];
        ulong[] reference = new ulong[fast.Length];
        constraint.ComputeMaskUncached(fast, walkEveryToken: false);
        constraint.ComputeMaskUncached(reference, walkEveryToken: true);
        Assert.Equal(reference, fast);
        for (int id = 0; id < logits.Length; id++)
        {
            Assert.Equal((reference[id >> 6] & (1UL << (id & 63))) != 0, logits[id] == 0);
        }
    }

    private static float[] Masked(JsonTokenConstraint constraint)
    {
        float[] logits = new float[Pycoder.Vocabulary.Size];
        constraint.MaskLogits(logits);
        return logits;
    }

    // Picks allowed tokens at random (seeded) until end-of-sequence is allowed, then picks it; returns the text.
    private static string Walk(JsonGrammar grammar, int seed)
    {
        var random = new Random(seed);
        var constraint = new JsonTokenConstraint(grammar, Pycoder.Vocabulary);
        var bytes = new List<byte>();
        var allowed = new List<int>();
        int[] finishers = [.. Finishers.Select(Pycoder.Id)];
        for (int step = 0; step < 5000; step++)
        {
            float[] logits = Masked(constraint);
            allowed.Clear();
            for (int id = 0; id < logits.Length; id++)
            {
                if (logits[id] == 0)
                {
                    allowed.Add(id);
                }
            }

            Assert.NotEmpty(allowed);
            AssertMaskMatchesReference(constraint, logits);
            for (int probe = 0; probe < 8; probe++)
            {
                int id = random.Next(logits.Length);
                Assert.Equal(logits[id] == 0, constraint.IsAllowed(id));
            }

            int pick;
            if (logits[Pycoder.EndOfText] == 0)
            {
                pick = Pycoder.EndOfText;
            }
            else if (step >= 40 && random.NextDouble() < 0.85 && Array.Find(finishers, f => logits[f] == 0) is int finisher && logits[finisher] == 0)
            {
                pick = finisher;
            }
            else
            {
                pick = allowed[random.Next(allowed.Count)];
            }

            Assert.True(constraint.Accept(pick));
            if (pick == Pycoder.EndOfText)
            {
                Assert.True(constraint.IsEnded);
                return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString([.. bytes]);
            }

            bytes.AddRange(Pycoder.TokenBytes[pick]!);
        }

        Assert.Fail($"the walk did not end: {Encoding.UTF8.GetString([.. bytes])}");
        return string.Empty;
    }
}
