using System.Text;

namespace InferenceServer.Tokenization;

/// <summary>The Digits pre-tokenizer: separates numeric characters, each on its own or as runs.</summary>
internal sealed class DigitsPreTokenizer : PreTokenizerStep
{
    private readonly bool _individualDigits;

    /// <summary>Creates the pre-tokenizer.</summary>
    /// <param name="individualDigits">True to make every digit its own piece, false to keep runs of digits together.</param>
    public DigitsPreTokenizer(bool individualDigits)
    {
        _individualDigits = individualDigits;
    }

    /// <inheritdoc />
    public override void PreTokenize(string piece, List<string> output)
    {
        // Hugging Face's character-predicate Pattern: every numeric character is one match, each run of others a gap.
        var cover = new List<(int Start, int End, bool IsMatch)>();
        int gapStart = 0;
        for (int i = 0; i < piece.Length;)
        {
            Rune.DecodeFromUtf16(piece.AsSpan(i), out Rune rune, out int consumed);
            if (Rune.IsNumber(rune))
            {
                if (gapStart < i)
                {
                    cover.Add((gapStart, i, false));
                }

                cover.Add((i, i + consumed, true));
                gapStart = i + consumed;
            }

            i += consumed;
        }

        if (gapStart < piece.Length)
        {
            cover.Add((gapStart, piece.Length, false));
        }

        DelimiterSplitter.Split(piece, cover, _individualDigits ? SplitBehavior.Isolated : SplitBehavior.Contiguous, false, output);
    }
}
