// Licensed under the MIT License. See LICENSE in the repository root.

using System.Globalization;
using System.Text;

namespace InferenceServer.Testing;

/// <summary>
/// JSON schemas built to hurt a schema compiler or a constrained decoder (issue 22): long and deep <c>$ref</c> chains,
/// nested unions whose naive expansion is exponential, deep nesting, and huge <c>const</c>/<c>enum</c> values. Shared
/// (as a linked source file) by the unit tests of the structured-output project and the functional and fuzz tests.
/// </summary>
internal static class HostileSchemas
{
    /// <summary>
    /// <c>#</c> refers to <c>d0</c>, <c>d0</c> to <c>d1</c>, ... and <c>d{links}</c> is <paramref name="target"/>:
    /// <paramref name="links"/> references before anything is matched.
    /// </summary>
    public static string RefChain(int links, string target = """{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}""")
    {
        var text = new StringBuilder("""{"$defs":{""");
        for (int i = 0; i < links; i++)
        {
            text.Append(CultureInfo.InvariantCulture, $"\"d{i}\":{{\"$ref\":\"#/$defs/d{i + 1}\"}},");
        }

        text.Append(CultureInfo.InvariantCulture, $"\"d{links}\":{target}}},\"$ref\":\"#/$defs/d0\"}}");
        return text.ToString();
    }

    /// <summary>
    /// <paramref name="levels"/> definitions, each an <c>anyOf</c> of two references to the next (the last an object):
    /// a few KB whose alternatives, expanded without sharing, number 2^levels.
    /// </summary>
    public static string NestedUnions(int levels)
    {
        var text = new StringBuilder("""{"$defs":{""");
        for (int i = 0; i < levels; i++)
        {
            text.Append(CultureInfo.InvariantCulture, $"\"u{i}\":{{\"anyOf\":[{{\"$ref\":\"#/$defs/u{i + 1}\"}},{{\"$ref\":\"#/$defs/u{i + 1}\"}}]}},");
        }

        text.Append(CultureInfo.InvariantCulture, $"\"u{levels}\":{{\"type\":\"object\",\"properties\":{{\"a\":{{\"type\":\"integer\"}}}},\"required\":[\"a\"]}}}},\"$ref\":\"#/$defs/u0\"}}");
        return text.ToString();
    }

    /// <summary>Arrays of arrays, <paramref name="depth"/> schemas deep, of integers.</summary>
    public static string DeepItems(int depth)
        => string.Concat(Enumerable.Repeat("""{"type":"array","items":""", depth)) + """{"type":"integer"}""" + new string('}', depth);

    /// <summary>A <c>const</c> string of <paramref name="length"/> characters.</summary>
    public static string HugeConst(int length) => "{\"const\":\"" + new string('x', length) + "\"}";

    /// <summary>An <c>enum</c> of <paramref name="count"/> distinct strings.</summary>
    public static string HugeEnum(int count)
        => """{"enum":[""" + string.Join(",", Enumerable.Range(0, count).Select(i => string.Create(CultureInfo.InvariantCulture, $"\"value-{i}\""))) + "]}";

    /// <summary>An <c>anyOf</c> of <paramref name="count"/> distinct objects (each its own alternative).</summary>
    public static string WideUnion(int count)
        => """{"anyOf":[""" + string.Join(",", Enumerable.Range(0, count).Select(i => string.Create(CultureInfo.InvariantCulture, $$$"""{"type":"object","properties":{"k{{{i}}}":{"type":"integer"}},"required":["k{{{i}}}"]}"""))) + "]}";
}
