using System.Buffers;
using System.Text;

namespace InferenceServer.Tokenization;

/// <summary>
/// The ByteLevel pre-tokenizer: optionally prepends a space, optionally splits with the GPT-2 regex (Isolated), and
/// rewrites every piece as its UTF-8 bytes in <see cref="ByteLevelAlphabet"/> characters.
/// </summary>
internal sealed class ByteLevelPreTokenizer : PreTokenizerStep
{
    /// <summary>The GPT-2 split regex that ByteLevel uses when <c>use_regex</c> is true.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly HfRegex Gpt2Regex = new(Gpt2Pattern);

    private readonly bool _addPrefixSpace;
    private readonly bool _useRegex;

    /// <summary>Creates the pre-tokenizer.</summary>
    /// <param name="addPrefixSpace">Whether a space is prepended to a piece that does not start with one.</param>
    /// <param name="useRegex">Whether the piece is split with the GPT-2 regex.</param>
    public ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex)
    {
        _addPrefixSpace = addPrefixSpace;
        _useRegex = useRegex;
    }

    /// <inheritdoc />
    public override void PreTokenize(string piece, List<string> output)
    {
        if (_addPrefixSpace && !piece.StartsWith(' '))
        {
            piece = " " + piece;
        }

        if (!_useRegex)
        {
            output.Add(ToByteLevel(piece));
            return;
        }

        var matches = new List<(int Start, int End)>();
        Gpt2Regex.FindMatches(piece, matches);
        var cover = new List<(int Start, int End, bool IsMatch)>((matches.Count * 2) + 1);
        DelimiterSplitter.CoverWithMatches(piece.Length, matches, cover);
        int first = output.Count;
        DelimiterSplitter.Split(piece, cover, SplitBehavior.Isolated, false, output);
        for (int i = first; i < output.Count; i++)
        {
            output[i] = ToByteLevel(output[i]);
        }
    }

    /// <summary>Returns <paramref name="text"/>'s UTF-8 bytes written as byte-level characters.</summary>
    /// <param name="text">The text to map.</param>
    public static string ToByteLevel(string text)
    {
        int maxBytes = Encoding.UTF8.GetMaxByteCount(text.Length);
        byte[] bytes = ArrayPool<byte>.Shared.Rent(maxBytes);
        try
        {
            int count = Encoding.UTF8.GetBytes(text, bytes);
            bool identical = count == text.Length;
            for (int i = 0; identical && i < count; i++)
            {
                identical = ByteLevelAlphabet.ByteToChar[bytes[i]] == text[i];
            }

            if (identical)
            {
                return text;
            }

            return string.Create(count, bytes, static (chars, source) =>
            {
                for (int i = 0; i < chars.Length; i++)
                {
                    chars[i] = ByteLevelAlphabet.ByteToChar[source[i]];
                }
            });
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }
}
