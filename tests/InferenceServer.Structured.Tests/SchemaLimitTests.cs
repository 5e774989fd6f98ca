// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text.Json;
using InferenceServer.Testing;
using static InferenceServer.Structured.Tests.ByteProbe;

namespace InferenceServer.Structured.Tests;

/// <summary>
/// Issue 22: no schema overflows the stack, expands exponentially, or costs memory out of proportion to its size; a
/// schema over a limit is refused naming the limit, and long valid reference chains compile to correct grammars.
/// </summary>
public sealed class SchemaLimitTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    // Parses with a nesting limit far above the server's (64), as a library caller might.
    private static JsonGrammar Compile(string json, SchemaLimits? limits = null)
    {
        using var document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 10_000 });
        return JsonGrammar.FromSchema(document.RootElement, strict: false, limits);
    }

    private static SchemaLimitExceededException Refused(string json, SchemaLimits? limits = null)
        => Assert.Throws<SchemaLimitExceededException>(() => Compile(json, limits));

    [Theory]
    [InlineData(100)]
    [InlineData(1_000)]
    [InlineData(5_000)]
    public void RefChain_CompilesToTheTargetsGrammar(int links)
    {
        JsonGrammar grammar = Compile(HostileSchemas.RefChain(links));
        Valid(grammar, """{"a":12}""");
        Invalid(grammar, """{"a":"x"}""");
        Invalid(grammar, "[", at: 0);
    }

    [Fact]
    public void RefChain_TensOfThousandsDeep_IsIterativeNotRecursive()
    {
        // Far past any stack the recursive compiler had: it must neither overflow nor refuse for depth.
        var limits = new SchemaLimits { MaxSchemaBytes = 16 << 20, MaxNodes = 200_000, MaxTotalAlternatives = 200_000, CompileTimeout = TimeSpan.FromMinutes(5) };
        JsonGrammar grammar = Compile(HostileSchemas.RefChain(100_000), limits);
        Valid(grammar, """{"a":-3}""");
    }

    [Fact]
    public void RefChain_PastTheDefaultLimits_IsRefusedNamingTheLimit()
    {
        // The 434 KB body: thousands of links.
        SchemaLimitExceededException size = Refused(HostileSchemas.RefChain(12_000));
        Assert.Equal(nameof(SchemaLimits.MaxSchemaBytes), size.Limit);
        Assert.Contains("MaxSchemaBytes (262,144)", size.Message, StringComparison.Ordinal);

        SchemaLimitExceededException nodes = Refused(HostileSchemas.RefChain(12_000), SchemaLimits.Default with { MaxSchemaBytes = 1 << 20 });
        Assert.Equal(nameof(SchemaLimits.MaxNodes), nodes.Limit);
    }

    [Fact]
    public void DeepNesting_IsRefusedNamingMaxNesting()
    {
        Valid(Compile(HostileSchemas.DeepItems(60)), new string('[', 60) + "1" + new string(']', 60));
        SchemaLimitExceededException error = Refused(HostileSchemas.DeepItems(2_000));
        Assert.Equal(nameof(SchemaLimits.MaxNesting), error.Limit);
        Assert.Contains("'#/items/items", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DeepConstValue_IsRefusedNamingMaxNesting()
    {
        string value = new string('[', 500) + new string(']', 500);
        SchemaLimitExceededException error = Refused("""{"const":""" + value + "}");
        Assert.Equal(nameof(SchemaLimits.MaxNesting), error.Limit);
    }

    [Fact]
    public async Task NestedUnionsOfRefs_CompileAndMatchInLinearTime()
    {
        // 40 levels of two-way anyOf: 2^40 paths for an expanding matcher, one alternative once flattened.
        string schema = HostileSchemas.NestedUnions(40);
        Assert.InRange(schema.Length, 1_000, 8_000);
        var run = Task.Run(() =>
        {
            JsonGrammar grammar = Compile(schema);
            Valid(grammar, """{"a":1}""");
            Invalid(grammar, """{"b":1}""");
            var constraint = new JsonTokenConstraint(grammar, Pycoder.Vocabulary);
            constraint.MaskLogits(new float[Pycoder.Vocabulary.Size]);
        });
        await run.WaitAsync(Bound); // a TimeoutException fails the test
    }

    [Fact]
    public void NestedUnions_WithDistinctAlternativesAtEachLevel_StayUnderTheAlternativeLimit()
    {
        // Each level adds one distinct object: the flattened union of level 0 has 41 alternatives.
        var text = new System.Text.StringBuilder("""{"$defs":{""");
        for (int i = 0; i < 40; i++)
        {
            text.Append($$$"""
                "u{{{i}}}":{"anyOf":[{"$ref":"#/$defs/u{{{i + 1}}}"},{"$ref":"#/$defs/u{{{i + 1}}}"},{"type":"object","properties":{"k{{{i}}}":{"type":"integer"}},"required":["k{{{i}}}"]}]},
                """);
        }

        text.Append("""  "u40":{"type":"string"}},"$ref":"#/$defs/u0"}""");
        JsonGrammar grammar = Compile(text.ToString());
        Valid(grammar, """{"k17":5}""");
        Valid(grammar, "\"s\"");
        Invalid(grammar, """{"k41":5}""");
        Assert.Equal(41, grammar.Nodes[grammar.Nodes[0].Value].Alternatives.Length);
    }

    [Fact]
    public void WideUnion_PastMaxUnionAlternatives_IsRefused()
    {
        // (At most JsonMatcher.MaxStates alternatives are tracked at once: pick one among the first.)
        Valid(Compile(HostileSchemas.WideUnion(500)), """{"k5":1}""");
        SchemaLimitExceededException error = Refused(HostileSchemas.WideUnion(600));
        Assert.Equal(nameof(SchemaLimits.MaxUnionAlternatives), error.Limit);
    }

    [Fact]
    public void HugeConst_IsRefusedBySizeOrLiteralLimit()
    {
        // The 3.9 MB const: over the schema size limit before anything is compiled.
        Assert.Equal(nameof(SchemaLimits.MaxSchemaBytes), Refused(HostileSchemas.HugeConst(3_900_000)).Limit);

        // Under the size limit but over the fixed-text limit.
        Assert.Equal(nameof(SchemaLimits.MaxLiteralBytes), Refused(HostileSchemas.HugeConst(200_000)).Limit);
        Assert.Equal(nameof(SchemaLimits.MaxLiteralBytes), Refused(HostileSchemas.HugeEnum(15_000)).Limit);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void HugeLiteral_UnderTheLimit_CostsASmallMultipleOfItsSize(bool asEnum)
    {
        string schema = asEnum ? HostileSchemas.HugeEnum(9_000) : HostileSchemas.HugeConst(120_000);
        using var document = JsonDocument.Parse(schema);
        long before = GC.GetAllocatedBytesForCurrentThread();
        JsonGrammar grammar = JsonGrammar.FromSchema(document.RootElement);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        // The old trie took a sorted dictionary per byte (over 100 bytes per schema byte; 400 MB for the 3.9 MB).
        Assert.True(allocated < 60L * schema.Length, $"compiling {schema.Length:N0} bytes allocated {allocated:N0}");
        Valid(grammar, asEnum ? "\"value-8999\"" : "\"" + new string('x', 120_000) + "\"");
    }

    [Fact]
    public void LongPropertyName_CompilesWithoutRecursion()
    {
        // The key trie's tables were filled one recursive call per byte of a name.
        string name = new('n', 60_000);
        JsonGrammar grammar = Compile($$$"""{"type":"object","properties":{"{{{name}}}":{"type":"integer"}},"required":["{{{name}}}"]}""");
        Valid(grammar, $$$"""{"{{{name}}}":7}""");
    }

    [Fact]
    public void ManyProperties_MatchInDeclarationOrder()
    {
        // Which declared key may come next is a binary search over the key trie's property lists (it was a scan).
        string properties = string.Join(",", Enumerable.Range(0, 8_000).Select(i => $$$"""
            "p{{{i}}}":{"type":"integer"}
            """));
        JsonGrammar grammar = Compile("""{"type":"object","properties":{""" + properties + "}}");
        Valid(grammar, """{"p7999":1}""");
        Valid(grammar, """{"p0":1,"p4000":2,"p7999":3}""");
        Invalid(grammar, """{"p7999":1,"p0":2}""");
        Invalid(grammar, """{"p8000":1}""");
    }

    [Fact]
    public void LongDocument_KeepsTheFrameTableBounded()
    {
        // Each array item interns a continuation with its count: 70,000 items pass the frame cap, which starts over.
        JsonGrammar grammar = Schema("""{"type":"array","items":{"type":"integer"},"maxItems":1000000}""");
        var constraint = new JsonTokenConstraint(grammar, Vocabulary);
        Assert.True(constraint.Accept('['));
        int peak = 0;
        for (int i = 0; i < 70_000; i++)
        {
            Assert.True(constraint.Accept(i == 0 ? '1' : ','));
            if (i > 0)
            {
                Assert.True(constraint.Accept('2'));
            }

            peak = Math.Max(peak, constraint.FrameCount);
        }

        Assert.InRange(peak, 1, Internal.JsonMatcher.MaxFrames);
        Assert.True(constraint.FrameCount < peak, "the frame table never started over");
        float[] logits = new float[Vocabulary.Size];
        constraint.MaskLogits(logits);
        Assert.False(float.IsNegativeInfinity(logits[']']));
        Assert.True(constraint.Accept(']'));
        Assert.True(constraint.IsComplete);
    }

    [Fact]
    public async Task ManyDefinitions_ResolveInLinearTime()
    {
        // n references into n definitions: a linear lookup per reference would be quadratic.
        var limits = new SchemaLimits { MaxSchemaBytes = 4 << 20, MaxNodes = 100_000, MaxTotalAlternatives = 100_000, CompileTimeout = TimeSpan.FromMinutes(5) };
        var run = Task.Run(() => Compile(HostileSchemas.RefChain(40_000), limits));
        await run.WaitAsync(Bound); // a TimeoutException fails the test
    }

    [Fact]
    public void CompileTimeout_IsEnforced()
    {
        SchemaLimitExceededException error = Refused(HostileSchemas.RefChain(2_000), SchemaLimits.Default with { CompileTimeout = TimeSpan.Zero });
        Assert.Equal(nameof(SchemaLimits.CompileTimeout), error.Limit);
        Assert.Contains("0 ms", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MaskWork_PastTheBudget_ThrowsForThatConstraintOnly()
    {
        JsonGrammar tight = Compile("""{"type":"object","properties":{"a":{"type":"string"}}}""", SchemaLimits.Default with { MaxMaskWork = 100 });
        var constraint = new JsonTokenConstraint(tight, Pycoder.Vocabulary);
        float[] logits = new float[Pycoder.Vocabulary.Size];
        ConstraintBudgetExceededException error = Assert.Throws<ConstraintBudgetExceededException>(() => constraint.MaskLogits(logits));
        Assert.Contains("MaxMaskWork", error.Message, StringComparison.Ordinal);

        // The same schema under the default budget masks normally.
        var normal = new JsonTokenConstraint(Schema("""{"type":"object","properties":{"a":{"type":"string"}}}"""), Pycoder.Vocabulary);
        normal.MaskLogits(logits);
        Assert.Contains(logits, l => !float.IsNegativeInfinity(l));
    }

    [Fact]
    public void AmbiguousUnion_MasksWithinTheDefaultBudget()
    {
        // 32 alternatives that share every prefix keep the most states alive at every trie node: the worst legitimate case.
        string schema = """{"anyOf":[""" + string.Join(",", Enumerable.Range(0, 32).Select(i => "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"v" + i + "\":{\"type\":\"integer\"}}}")) + "]}";
        var constraint = new JsonTokenConstraint(Schema(schema), Pycoder.Vocabulary);
        float[] logits = new float[Pycoder.Vocabulary.Size];
        foreach (string token in (string[])["{", "\"", "name", "\":", " \"", "abc"])
        {
            Array.Clear(logits);
            constraint.MaskLogits(logits);
            Assert.True(constraint.Accept(Pycoder.Id(token)), $"'{token}' was refused");
        }
    }
}
