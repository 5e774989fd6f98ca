using System.Text;

namespace InferenceServer.Tokenization;

/// <summary>
/// The Lowercase normalizer: Rust's <c>char::to_lowercase</c> on every character, i.e. the Unicode lowercase mapping
/// without context (Σ always becomes σ) and with U+0130 becoming "i\u0307".
/// </summary>
internal sealed class LowercaseNormalizer : TextNormalizer
{
    /// <inheritdoc />
    public override string Normalize(string text)
    {
        var builder = new StringBuilder(text.Length);
        Span<char> chars = stackalloc char[2];
        bool changed = false;
        for (int i = 0; i < text.Length;)
        {
            if (Rune.DecodeFromUtf16(text.AsSpan(i), out Rune rune, out int consumed) != System.Buffers.OperationStatus.Done)
            {
                builder.Append(text[i]);
                i++;
                continue;
            }

            i += consumed;
            if (rune.Value == 0x130)
            {
                // Invariant-mode casing leaves U+0130 alone; Unicode's full lowercase mapping is "i" + combining dot.
                builder.Append("i\u0307");
                changed = true;
                continue;
            }

            Rune lower = Rune.ToLowerInvariant(rune);
            changed |= lower != rune;
            int written = lower.EncodeToUtf16(chars);
            builder.Append(chars[..written]);
        }

        return changed ? builder.ToString() : text;
    }
}
