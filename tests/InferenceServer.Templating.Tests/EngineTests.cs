// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text.Json;

namespace InferenceServer.Templating.Tests;

/// <summary>Guards, errors and API behaviour of the engine that the Jinja2 cases do not cover.</summary>
public class EngineTests
{
    private static string Render(string template, string variablesJson = "{}", ChatTemplateOptions? options = null)
    {
        var context = new ChatTemplateContext(options);
        foreach (JsonProperty p in JsonDocument.Parse(variablesJson).RootElement.EnumerateObject())
        {
            context.Set(p.Name, p.Value);
        }

        return ChatTemplate.Parse(template).Render(context);
    }

    [Fact]
    public void RunawayLoop_HitsIterationLimit()
    {
        var options = new ChatTemplateOptions { MaxLoopIterations = 10_000 };
        var ex = Assert.Throws<ChatTemplateException>(() => Render("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", options: options));
        Assert.Equal(ChatTemplateErrorKind.LimitExceeded, ex.Kind);
        Assert.Contains("10000 loop iterations", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoopWithinLimit_Runs()
    {
        Assert.Equal("4950", Render("{% set ns = namespace(s=0) %}{% for i in range(100) %}{% set ns.s = ns.s + i %}{% endfor %}{{ ns.s }}"));
    }

    [Fact]
    public void HugeOutput_HitsOutputLimit()
    {
        var options = new ChatTemplateOptions { MaxOutputLength = 1000 };
        var ex = Assert.Throws<ChatTemplateException>(() => Render("{% for i in range(100) %}0123456789ABCDEF{% endfor %}", options: options));
        Assert.Equal(ChatTemplateErrorKind.LimitExceeded, ex.Kind);
    }

    [Fact]
    public void StringRepetitionBomb_IsRefused()
    {
        var ex = Assert.Throws<ChatTemplateException>(() => Render("{{ 'x' * 1000000000000 }}"));
        Assert.Equal(ChatTemplateErrorKind.LimitExceeded, ex.Kind);
    }

    [Fact]
    public void InfiniteMacroRecursion_HitsDepthLimit()
    {
        var ex = Assert.Throws<ChatTemplateException>(() => Render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"));
        Assert.Equal(ChatTemplateErrorKind.LimitExceeded, ex.Kind);
        Assert.Contains("macro calls nested deeper than 64", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DeeplyNestedExpression_IsASyntaxErrorNotAStackOverflow()
    {
        string template = "{{ " + new string('(', 5000) + "1" + new string(')', 5000) + " }}";
        var ex = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(template));
        Assert.Equal(ChatTemplateErrorKind.Syntax, ex.Kind);
    }

    [Theory]
    [InlineData("a\nb\n{% if x %}\nc", 4)]
    [InlineData("{{ x }}\n{{ y +* 2 }}", 2)]
    [InlineData("one\ntwo\nthree {% endfor %}", 3)]
    [InlineData("{% for x in y %}\n{% break %}{% endfor %}{% continue %}", 2)]
    [InlineData("\n\n{% include 'other.jinja' %}", 3)]
    [InlineData("{{ '\\xZZ' }}", 1)]
    [InlineData("{% for x in y recursive %}{% endfor %}", 1)]
    public void SyntaxError_NamesTheLine(string template, int line)
    {
        var ex = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(template));
        Assert.Equal(ChatTemplateErrorKind.Syntax, ex.Kind);
        Assert.Equal(line, ex.Line);
        Assert.StartsWith($"Template syntax error at line {line}: ", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RuntimeError_NamesTheLine()
    {
        var ex = Assert.Throws<ChatTemplateException>(() => Render("ok\n{% for m in messages %}\n{{ 'a' + m }}\n{% endfor %}", """{"messages": [{"a": 1}]}"""));
        Assert.Equal(ChatTemplateErrorKind.Runtime, ex.Kind);
        Assert.Equal(3, ex.Line);
        Assert.Contains("can only concatenate str (not \"dict\") to str", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RaiseException_MessageIsExactlyTheTemplates()
    {
        var ex = Assert.Throws<ChatTemplateException>(() => Render("line\n{{ raise_exception('Only user and assistant roles are supported!') }}"));
        Assert.Equal(ChatTemplateErrorKind.RaisedByTemplate, ex.Kind);
        Assert.Equal("Only user and assistant roles are supported!", ex.Message);
        Assert.Equal("Only user and assistant roles are supported!", ex.Detail);
    }

    [Fact]
    public void IntegerBeyond64Bits_IsRefusedNotWrapped()
    {
        // Python has arbitrary-precision ints (2 ** 100 renders 1267650600228229401496703205376); this engine stops
        // with a clear error rather than print a wrapped or rounded number.
        var ex = Assert.Throws<ChatTemplateException>(() => Render("{{ 2 ** 100 }}"));
        Assert.Equal(ChatTemplateErrorKind.Runtime, ex.Kind);
        Assert.Contains("OverflowError", ex.Message, StringComparison.Ordinal);
        Assert.Equal("9223372036854775807", Render("{{ 9223372036854775806 + 1 }}"));
    }

    [Fact]
    public void StrftimeNow_ReadsTheInjectedClock()
    {
        var options = new ChatTemplateOptions { TimeProvider = new FixedTimeProvider(new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero)) };
        Assert.Equal("02 Jan 2025 03:04", Render("{{ strftime_now('%d %b %Y %H:%M') }}", options: options));
    }

    [Fact]
    public void Template_RendersManyTimesAndConcurrently()
    {
        ChatTemplate template = ChatTemplate.Parse("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{{ m }}{% endfor %}:{{ ns.n }}");
        Parallel.For(0, 64, i =>
        {
            var context = new ChatTemplateContext().Set("messages", JsonDocument.Parse($"[{i}, {i + 1}]").RootElement);
            Assert.Equal($"{i}{i + 1}:2", template.Render(context));
        });
    }

    [Fact]
    public void KeyOrder_IsKeptThroughItemsAndTojson()
    {
        Assert.Equal("z,a,m|{\"z\": 1, \"a\": 2, \"m\": 3}", Render("{{ d.keys()|join(',') }}|{{ d|tojson }}", """{"d": {"z": 1, "a": 2, "m": 3}}"""));
    }

    [Fact]
    public void JsonNumbers_KeepIntegerAndFloatApart()
    {
        Assert.Equal("1 1.0 100000.0 -3 [1, 1.5]", Render("{{ a }} {{ b }} {{ c }} {{ d }} {{ e }}", """{"a": 1, "b": 1.0, "c": 1e5, "d": -3, "e": [1, 1.5]}"""));
    }

    [Fact]
    public void Context_SetOverloads()
    {
        var context = new ChatTemplateContext()
            .Set("s", "x").Set("n", (string?)null).Set("b", true).Set("i", 42L).Set("l", ["a", "b"]);
        Assert.True(context.Contains("n"));
        Assert.Equal("x None True 42 ['a', 'b']", ChatTemplate.Parse("{{ s }} {{ n }} {{ b }} {{ i }} {{ l }}").Render(context));
    }
}
