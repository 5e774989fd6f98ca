using System.Text;

namespace InferenceServer.Tokenization;

/// <summary>
/// Unicode normalization forms NFC, NFD, NFKC and NFKD (UAX #15), implemented over
/// <see cref="UnicodeNormalizationData"/> because <see cref="string.Normalize()"/> does nothing under
/// InvariantGlobalization.
/// </summary>
internal static class UnicodeNormalization
{
    private const int SBase = 0xAC00;
    private const int LBase = 0x1100;
    private const int VBase = 0x1161;
    private const int TBase = 0x11A7;
    private const int LCount = 19;
    private const int VCount = 21;
    private const int TCount = 28;
    private const int NCount = VCount * TCount;
    private const int SCount = LCount * NCount;

    /// <summary>Returns <paramref name="text"/> in normalization form <paramref name="form"/>.</summary>
    /// <param name="text">The text to normalize.</param>
    /// <param name="form">The normalization form.</param>
    public static string Normalize(string text, NormalizationForm form)
    {
        bool compatibility = form is NormalizationForm.FormKC or NormalizationForm.FormKD;
        bool compose = form is NormalizationForm.FormC or NormalizationForm.FormKC;

        // Below these bounds every character is its own normalization in the given form.
        char stableBelow = form switch
        {
            NormalizationForm.FormC => '\u0300',
            NormalizationForm.FormD => '\u00C0',
            _ => '\u00A0',
        };
        if (!text.AsSpan().ContainsAnyExceptInRange('\0', (char)(stableBelow - 1)))
        {
            return text;
        }

        List<int> codePoints = Decompose(text, compatibility);
        if (compose)
        {
            Compose(codePoints);
        }

        var builder = new StringBuilder(codePoints.Count + 8);
        foreach (int codePoint in codePoints)
        {
            if (codePoint < 0x10000)
            {
                builder.Append((char)codePoint);
            }
            else
            {
                builder.Append((char)(0xD800 + ((codePoint - 0x10000) >> 10)));
                builder.Append((char)(0xDC00 + ((codePoint - 0x10000) & 0x3FF)));
            }
        }

        string result = builder.ToString();
        return result == text ? text : result;
    }

    /// <summary>Whether <paramref name="codePoint"/> is a precomposed Hangul syllable.</summary>
    /// <param name="codePoint">A Unicode scalar value.</param>
    public static bool IsHangulSyllable(int codePoint) => codePoint >= SBase && codePoint < SBase + SCount;

    /// <summary>Appends the canonical decomposition of a Hangul syllable (two or three jamo).</summary>
    /// <param name="codePoint">A precomposed Hangul syllable.</param>
    /// <param name="output">Receives the jamo.</param>
    public static void AppendHangulDecomposition(int codePoint, List<int> output)
    {
        int index = codePoint - SBase;
        output.Add(LBase + (index / NCount));
        output.Add(VBase + (index % NCount / TCount));
        int trailing = index % TCount;
        if (trailing != 0)
        {
            output.Add(TBase + trailing);
        }
    }

    private static List<int> Decompose(string text, bool compatibility)
    {
        UnicodeNormalizationData data = UnicodeNormalizationData.Instance;
        var output = new List<int>(text.Length + 8);
        for (int i = 0; i < text.Length;)
        {
            int codePoint;
            if (Rune.DecodeFromUtf16(text.AsSpan(i), out Rune rune, out int consumed) == System.Buffers.OperationStatus.Done)
            {
                codePoint = rune.Value;
            }
            else
            {
                // A lone surrogate (which a Rust string cannot hold): passed through unchanged.
                codePoint = text[i];
            }

            i += consumed;
            if (IsHangulSyllable(codePoint))
            {
                AppendHangulDecomposition(codePoint, output);
            }
            else if (data.Decomposition(codePoint, compatibility) is { } mapping)
            {
                output.AddRange(mapping);
            }
            else
            {
                output.Add(codePoint);
            }
        }

        // Canonical ordering: a stable sort of each run of non-starters by combining class.
        for (int i = 1; i < output.Count; i++)
        {
            int current = output[i];
            int currentClass = data.CombiningClass(current);
            if (currentClass == 0)
            {
                continue;
            }

            int j = i;
            while (j > 0)
            {
                int previousClass = data.CombiningClass(output[j - 1]);
                if (previousClass <= currentClass)
                {
                    break;
                }

                output[j] = output[j - 1];
                j--;
            }

            output[j] = current;
        }

        return output;
    }

    private static void Compose(List<int> codePoints)
    {
        if (codePoints.Count == 0)
        {
            return;
        }

        UnicodeNormalizationData data = UnicodeNormalizationData.Instance;
        int starterPosition = 0;
        int starter = codePoints[0];
        int lastClass = data.CombiningClass(starter);
        if (lastClass != 0)
        {
            // The text starts with a non-starter: nothing may compose with it.
            lastClass = 256;
        }

        int write = 1;
        for (int read = 1; read < codePoints.Count; read++)
        {
            int current = codePoints[read];
            int currentClass = data.CombiningClass(current);
            int composite = ComposePair(data, starter, current);
            if (composite >= 0 && (lastClass < currentClass || lastClass == 0))
            {
                codePoints[starterPosition] = composite;
                starter = composite;
                continue;
            }

            if (currentClass == 0)
            {
                starterPosition = write;
                starter = current;
            }

            lastClass = currentClass;
            codePoints[write++] = current;
        }

        codePoints.RemoveRange(write, codePoints.Count - write);
    }

    private static int ComposePair(UnicodeNormalizationData data, int first, int second)
    {
        if (first >= LBase && first < LBase + LCount && second >= VBase && second < VBase + VCount)
        {
            return SBase + ((((first - LBase) * VCount) + (second - VBase)) * TCount);
        }

        if (IsHangulSyllable(first) && (first - SBase) % TCount == 0 && second > TBase && second < TBase + TCount)
        {
            return first + (second - TBase);
        }

        return data.Compose(first, second);
    }
}
