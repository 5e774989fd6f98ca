using System.Buffers;
using System.Globalization;
using System.Text.RegularExpressions;

namespace InferenceServer.Tokenization;

/// <summary>
/// A regex from a tokenizer.json (Oniguruma syntax, matched over Unicode scalar values by Hugging Face) run with
/// .NET's <see cref="Regex"/>, which matches UTF-16 code units. To agree on text outside the BMP (emoji, supplementary
/// letters), every surrogate pair is replaced, for matching only, by one BMP character of the same general category
/// that the pattern does not mention; match positions are mapped back to the original text. So
/// <c>[^\r\n\p{L}\p{N}]?\p{L}+</c> takes "🙂abc" whole, as Hugging Face does, instead of splitting the emoji.
/// </summary>
internal sealed class HfRegex
{
    private static readonly Regex PosixBracket = new(@"\[:\^?[a-z]+:\]", RegexOptions.CultureInvariant);

    private readonly Regex _regex;
    private readonly char[] _standIns;

    /// <summary>Compiles an Oniguruma pattern.</summary>
    /// <param name="pattern">The pattern as written in tokenizer.json.</param>
    /// <exception cref="ArgumentException">The pattern is invalid or uses syntax .NET would read differently.</exception>
    public HfRegex(string pattern)
    {
        if (PosixBracket.IsMatch(pattern))
        {
            throw new ArgumentException("POSIX bracket expressions ([:alpha:]) are not supported", nameof(pattern));
        }

        Pattern = pattern;
        _regex = new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled);
        _standIns = ChooseStandIns(pattern);
    }

    /// <summary>The pattern as written in tokenizer.json.</summary>
    public string Pattern { get; }

    /// <summary>Creates the regex matching <paramref name="literal"/> literally (a String pattern).</summary>
    /// <param name="literal">The text to match.</param>
    public static HfRegex ForLiteral(string literal) => new(Regex.Escape(literal));

    /// <summary>Appends the (start, end) of every successive non-overlapping match, in UTF-16 indices of <paramref name="text"/>.</summary>
    /// <param name="text">The text to search.</param>
    /// <param name="matches">Receives the matches, in order; empty matches included.</param>
    public void FindMatches(string text, List<(int Start, int End)> matches)
    {
        if (text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            foreach (ValueMatch match in _regex.EnumerateMatches(text))
            {
                matches.Add((match.Index, match.Index + match.Length));
            }

            return;
        }

        char[] substituted = ArrayPool<char>.Shared.Rent(text.Length);
        int[] origins = ArrayPool<int>.Shared.Rent(text.Length + 1);
        try
        {
            int length = 0;
            for (int i = 0; i < text.Length; length++)
            {
                origins[length] = i;
                if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                {
                    int codePoint = char.ConvertToUtf32(text[i], text[i + 1]);
                    substituted[length] = _standIns[(int)CharUnicodeInfo.GetUnicodeCategory(codePoint)];
                    i += 2;
                }
                else
                {
                    substituted[length] = text[i];
                    i++;
                }
            }

            origins[length] = text.Length;
            foreach (ValueMatch match in _regex.EnumerateMatches(substituted.AsSpan(0, length)))
            {
                matches.Add((origins[match.Index], origins[match.Index + match.Length]));
            }
        }
        finally
        {
            ArrayPool<char>.Shared.Return(substituted);
            ArrayPool<int>.Shared.Return(origins);
        }
    }

    private static char[] ChooseStandIns(string pattern)
    {
        // One BMP character per general category, taken from blocks that tokenizer patterns do not name, and
        // avoiding every character (and case variant) that appears in the pattern.
        var standIns = new char[32];
        var found = new bool[32];
        int remaining = 0;
        foreach (UnicodeCategory category in Enum.GetValues<UnicodeCategory>())
        {
            if (category != UnicodeCategory.Surrogate)
            {
                remaining++;
            }
        }

        for (int pass = 0; pass < 2 && remaining > 0; pass++)
        {
            int from = pass == 0 ? 0xA000 : 0x0100;
            int to = pass == 0 ? 0xFFFD : 0x9FFF;
            for (int c = from; c <= to && remaining > 0; c++)
            {
                char candidate = (char)c;
                if (char.IsSurrogate(candidate))
                {
                    continue;
                }

                int category = (int)CharUnicodeInfo.GetUnicodeCategory(candidate);
                if (found[category] || Mentions(pattern, candidate))
                {
                    continue;
                }

                standIns[category] = candidate;
                found[category] = true;
                remaining--;
            }
        }

        // A lone surrogate category keeps its own code unit; any category left unfilled falls back to U+FFFD's.
        for (int i = 0; i < standIns.Length; i++)
        {
            if (!found[i])
            {
                standIns[i] = '\uFFFD';
            }
        }

        return standIns;
    }

    private static bool Mentions(string pattern, char candidate)
        => pattern.Contains(candidate, StringComparison.Ordinal)
            || pattern.Contains(char.ToUpperInvariant(candidate), StringComparison.Ordinal)
            || pattern.Contains(char.ToLowerInvariant(candidate), StringComparison.Ordinal);
}
