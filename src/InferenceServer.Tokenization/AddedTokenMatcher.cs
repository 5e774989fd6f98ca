using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace InferenceServer.Tokenization;

/// <summary>
/// Finds added tokens in text the way Hugging Face's AddedVocabulary does: leftmost-longest non-overlapping matches
/// (Aho-Corasick), with <c>single_word</c>, <c>lstrip</c> and <c>rstrip</c> applied to each match.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, (string Pattern, AddedToken Token)[]> _byFirstChar;

    /// <summary>Creates the matcher.</summary>
    /// <param name="patterns">The text to look for and the token it stands for; empty patterns are ignored.</param>
    public AddedTokenMatcher(IEnumerable<(string Pattern, AddedToken Token)> patterns)
    {
        _byFirstChar = patterns
            .Where(p => p.Pattern.Length > 0)
            .GroupBy(p => p.Pattern, StringComparer.Ordinal)
            .Select(g => g.First())
            .GroupBy(p => p.Pattern[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(p => p.Pattern.Length).ToArray());
    }

    /// <summary>Whether there is nothing to match.</summary>
    public bool IsEmpty => _byFirstChar.Count == 0;

    /// <summary>Splits <paramref name="text"/> into added-token matches and the text between them (non-empty parts only).</summary>
    /// <param name="text">The text to search.</param>
    /// <param name="segments">Receives the segments, covering the text in order.</param>
    public void Split(string text, List<TextSegment> segments)
    {
        int startOffset = 0;
        int position = 0;
        while (position < text.Length)
        {
            if (!TryMatchAt(text, position, out int matchEnd, out AddedToken? token))
            {
                position++;
                continue;
            }

            int start = position;
            int stop = matchEnd;
            position = matchEnd;
            if (token.SingleWord)
            {
                bool startSpace = start == 0 || !EndsWithWord(text, start);
                bool stopSpace = stop == text.Length || !StartsWithWord(text, stop);
                if (!startSpace || !stopSpace)
                {
                    continue;
                }
            }

            if (token.LeftStrip)
            {
                int newStart = start;
                while (newStart > 0 && char.IsWhiteSpace(text[newStart - 1]))
                {
                    newStart--;
                }

                start = Math.Max(newStart, startOffset);
            }

            if (token.RightStrip)
            {
                while (stop < text.Length && char.IsWhiteSpace(text[stop]))
                {
                    stop++;
                }
            }

            if (startOffset < start)
            {
                segments.Add(new TextSegment(startOffset, start, null));
            }

            segments.Add(new TextSegment(start, stop, token));
            startOffset = stop;
        }

        if (startOffset < text.Length)
        {
            segments.Add(new TextSegment(startOffset, text.Length, null));
        }
    }

    private bool TryMatchAt(string text, int position, out int end, [NotNullWhen(true)] out AddedToken? token)
    {
        if (_byFirstChar.TryGetValue(text[position], out (string Pattern, AddedToken Token)[]? candidates))
        {
            ReadOnlySpan<char> rest = text.AsSpan(position);
            foreach ((string pattern, AddedToken candidate) in candidates)
            {
                if (rest.StartsWith(pattern, StringComparison.Ordinal))
                {
                    end = position + pattern.Length;
                    token = candidate;
                    return true;
                }
            }
        }

        end = 0;
        token = null;
        return false;
    }

    private static bool EndsWithWord(string text, int end)
    {
        Rune.DecodeLastFromUtf16(text.AsSpan(0, end), out Rune rune, out _);
        return IsWordRune(rune);
    }

    private static bool StartsWithWord(string text, int start)
    {
        Rune.DecodeFromUtf16(text.AsSpan(start), out Rune rune, out _);
        return IsWordRune(rune);
    }

    // Rust regex's Unicode \w: Alphabetic, marks, decimal digits, connector punctuation, joiners.
    private static bool IsWordRune(Rune rune)
    {
        UnicodeCategory category = Rune.GetUnicodeCategory(rune);
        return category switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.NonSpacingMark
                or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark
                or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber
                or UnicodeCategory.ConnectorPunctuation => true,
            _ => rune.Value is 0x200C or 0x200D,
        };
    }
}
