// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text;

namespace InferenceServer.Structured.Tests;

/// <summary>The vocabulary's validation, its tries, and sharing one grammar and vocabulary across sequences.</summary>
public sealed class TokenVocabularyTests
{
    [Fact]
    public void Constructor_RefusesEndOfSequenceOutsideTheVocabulary()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new TokenVocabulary([[1], [2]], [2]));
        Assert.Contains("2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tries_HoldEveryUsableTokenOnceAndSplitPlainStringTokens()
    {
        byte[]?[] tokens = [Bytes("{"), Bytes("ab"), Bytes("ab"), Bytes("a\""), null, [], Bytes("\n"), [0xC3], Bytes("é"), Bytes("x")];
        var vocabulary = new TokenVocabulary(tokens, [9]);

        // Usable: every id with bytes, except the empty one and end-of-sequence (9).
        Assert.Equal([0, 1, 2, 3, 6, 7, 8], vocabulary.Trie.SortedIds.Order());
        // Plain string content: "ab" (twice) and "é"; "{" is plain too. Not: a quote, a control character, half a character.
        Assert.Equal([3, 6, 7], vocabulary.NonPlainTrie.SortedIds.Order());
        Assert.True(Bit(vocabulary.PlainUpTo[1], 8));
        Assert.False(Bit(vocabulary.PlainUpTo[1], 1));
        Assert.True(Bit(vocabulary.PlainUpTo[2], 1) && Bit(vocabulary.PlainUpTo[2], 2) && Bit(vocabulary.PlainUpTo[2], 0));
        Assert.False(Bit(vocabulary.PlainUpTo[32], 3) || Bit(vocabulary.PlainUpTo[32], 9));
    }

    [Fact]
    public void Constraints_ShareOneGrammarAndVocabularyIndependently()
    {
        JsonGrammar grammar = JsonGrammar.AnyObject;
        var first = new JsonTokenConstraint(grammar, ByteProbe.Vocabulary);
        var second = new JsonTokenConstraint(grammar, ByteProbe.Vocabulary);
        Assert.True(first.Accept('{'));
        Assert.False(second.IsAllowed('}'));
        Assert.True(first.IsAllowed('}'));
        Assert.True(second.Accept(' '));
        Assert.False(first.IsAllowed(' ' + 1));
    }

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    private static bool Bit(ulong[] bits, int id) => (bits[id >> 6] & (1UL << (id & 63))) != 0;
}
