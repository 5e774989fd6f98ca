namespace InferenceServer.Tokenization;

/// <summary>Hugging Face's <c>NormalizedString::split</c>: turns delimiter matches into pieces per <see cref="SplitBehavior"/>.</summary>
internal static class DelimiterSplitter
{
    /// <summary>
    /// Turns regex matches into the cover of the text that Hugging Face's Pattern gives: the gaps
    /// (not matches) and the matches, in order, empty matches included.
    /// </summary>
    /// <param name="textLength">The length of the searched text.</param>
    /// <param name="matches">The regex matches, in order.</param>
    /// <param name="cover">Receives (start, end, isMatch) parts covering the whole text.</param>
    public static void CoverWithMatches(int textLength, List<(int Start, int End)> matches, List<(int Start, int End, bool IsMatch)> cover)
    {
        if (textLength == 0)
        {
            cover.Add((0, 0, false));
            return;
        }

        int previous = 0;
        foreach ((int start, int end) in matches)
        {
            if (previous != start)
            {
                cover.Add((previous, start, false));
            }

            cover.Add((start, end, true));
            previous = end;
        }

        if (previous != textLength)
        {
            cover.Add((previous, textLength, false));
        }
    }

    /// <summary>Splits <paramref name="text"/> by its cover and appends the non-empty pieces.</summary>
    /// <param name="text">The text being split.</param>
    /// <param name="cover">(start, end, isMatch) parts covering the text, from <see cref="CoverWithMatches"/> or a character predicate.</param>
    /// <param name="behavior">What to do with the delimiters (the matches).</param>
    /// <param name="invert">Whether matches and gaps swap roles.</param>
    /// <param name="output">Receives the pieces.</param>
    public static void Split(string text, List<(int Start, int End, bool IsMatch)> cover, SplitBehavior behavior, bool invert, List<string> output)
    {
        var pieces = new List<(int Start, int End, bool Remove)>(cover.Count);
        bool previousMatch = false;
        if (behavior == SplitBehavior.MergedWithNext)
        {
            for (int i = cover.Count - 1; i >= 0; i--)
            {
                (int start, int end, bool isMatch) = cover[i];
                isMatch ^= invert;
                if (isMatch && !previousMatch && pieces.Count > 0)
                {
                    (int _, int lastEnd, bool lastRemove) = pieces[^1];
                    pieces[^1] = (start, lastEnd, lastRemove);
                }
                else
                {
                    pieces.Add((start, end, false));
                }

                previousMatch = isMatch;
            }

            pieces.Reverse();
        }
        else
        {
            foreach ((int start, int end, bool match) in cover)
            {
                bool isMatch = match ^ invert;
                switch (behavior)
                {
                    case SplitBehavior.Isolated:
                        pieces.Add((start, end, false));
                        break;
                    case SplitBehavior.Removed:
                        pieces.Add((start, end, isMatch));
                        break;
                    case SplitBehavior.Contiguous:
                        if (isMatch == previousMatch && pieces.Count > 0)
                        {
                            pieces[^1] = (pieces[^1].Start, end, false);
                        }
                        else
                        {
                            pieces.Add((start, end, false));
                        }

                        break;
                    default:
                        // MergedWithPrevious.
                        if (isMatch && !previousMatch && pieces.Count > 0)
                        {
                            pieces[^1] = (pieces[^1].Start, end, false);
                        }
                        else
                        {
                            pieces.Add((start, end, false));
                        }

                        break;
                }

                previousMatch = isMatch;
            }
        }

        foreach ((int start, int end, bool remove) in pieces)
        {
            if (!remove && end > start)
            {
                output.Add(start == 0 && end == text.Length ? text : text[start..end]);
            }
        }
    }
}
