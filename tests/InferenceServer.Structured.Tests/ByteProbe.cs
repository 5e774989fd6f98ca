// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text;

namespace InferenceServer.Structured.Tests;

/// <summary>
/// Drives a grammar byte by byte through the public API: a vocabulary whose token <c>b</c> is the single byte
/// <c>b</c> (ids 0-255), a special token (256, never allowed) and end-of-sequence (257). Every step also checks that
/// <see cref="JsonTokenConstraint.MaskLogits"/> agrees with <see cref="JsonTokenConstraint.Accept"/>.
/// </summary>
internal static class ByteProbe
{
    public const int Special = 256;
    public const int Eos = 257;

    public static readonly TokenVocabulary Vocabulary = new(
        [.. Enumerable.Range(0, 256).Select(b => new[] { (byte)b }), null, null], [Eos]);

    /// <summary>How far the bytes get: the number accepted, and whether the whole input is a complete document.</summary>
    public static (int Accepted, bool Complete) Run(JsonGrammar grammar, byte[] input)
    {
        var constraint = new JsonTokenConstraint(grammar, Vocabulary);
        float[] logits = new float[Vocabulary.Size];
        for (int i = 0; i < input.Length; i++)
        {
            Array.Clear(logits);
            constraint.MaskLogits(logits);
            Assert.True(float.IsNegativeInfinity(logits[Special]), "the special token is never allowed");
            bool masked = float.IsNegativeInfinity(logits[input[i]]);
            Assert.Equal(constraint.IsAllowed(input[i]), !masked);
            Assert.Equal(constraint.IsComplete, !float.IsNegativeInfinity(logits[Eos]));
            bool accepted = constraint.Accept(input[i]);
            Assert.Equal(!masked, accepted);
            if (!accepted)
            {
                return (i, false);
            }
        }

        Array.Clear(logits);
        constraint.MaskLogits(logits);
        bool complete = constraint.IsComplete;
        Assert.Equal(complete, !float.IsNegativeInfinity(logits[Eos]));
        if (complete)
        {
            Assert.True(constraint.Accept(Eos));
            Assert.False(constraint.Accept((byte)' '), "nothing follows end-of-sequence");
        }
        else
        {
            Assert.False(constraint.Accept(Eos));
        }

        return (input.Length, complete);
    }

    public static (int Accepted, bool Complete) Run(JsonGrammar grammar, string input) => Run(grammar, Encoding.UTF8.GetBytes(input));

    /// <summary>The input is a complete document.</summary>
    public static void Valid(JsonGrammar grammar, string input)
    {
        (int accepted, bool complete) = Run(grammar, input);
        Assert.True(accepted == Encoding.UTF8.GetByteCount(input), $"'{input}' was refused after {accepted} bytes");
        Assert.True(complete, $"'{input}' was accepted but is not complete");
    }

    /// <summary>The input is a valid prefix but not a complete document.</summary>
    public static void Prefix(JsonGrammar grammar, string input)
    {
        (int accepted, bool complete) = Run(grammar, input);
        Assert.True(accepted == Encoding.UTF8.GetByteCount(input), $"'{input}' was refused after {accepted} bytes");
        Assert.False(complete, $"'{input}' should not be complete");
    }

    /// <summary>The input is refused, at byte <paramref name="at"/> when given.</summary>
    public static void Invalid(JsonGrammar grammar, string input, int at = -1) => Invalid(grammar, Encoding.UTF8.GetBytes(input), at);

    public static void Invalid(JsonGrammar grammar, byte[] input, int at = -1)
    {
        (int accepted, _) = Run(grammar, input);
        Assert.True(accepted < input.Length, $"'{Encoding.UTF8.GetString(input)}' should be refused");
        if (at >= 0)
        {
            Assert.Equal(at, accepted);
        }
    }

    public static JsonGrammar Schema(string json, bool strict = false)
    {
        using var document = System.Text.Json.JsonDocument.Parse(json);
        return JsonGrammar.FromSchema(document.RootElement, strict);
    }
}
