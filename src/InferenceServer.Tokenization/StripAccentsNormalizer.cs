using System.Globalization;
using System.Text;

namespace InferenceServer.Tokenization;

/// <summary>The StripAccents normalizer: removes every combining mark (general category M).</summary>
internal sealed class StripAccentsNormalizer : TextNormalizer
{
    /// <inheritdoc />
    public override string Normalize(string text)
    {
        var builder = new StringBuilder(text.Length);
        bool changed = false;
        for (int i = 0; i < text.Length;)
        {
            if (Rune.DecodeFromUtf16(text.AsSpan(i), out Rune rune, out int consumed) != System.Buffers.OperationStatus.Done)
            {
                builder.Append(text[i]);
                i++;
                continue;
            }

            UnicodeCategory category = Rune.GetUnicodeCategory(rune);
            if (category is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark)
            {
                changed = true;
            }
            else
            {
                builder.Append(text, i, consumed);
            }

            i += consumed;
        }

        return changed ? builder.ToString() : text;
    }
}
