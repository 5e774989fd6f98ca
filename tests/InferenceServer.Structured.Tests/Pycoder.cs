// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text;
using InferenceServer.Tokenization;

namespace InferenceServer.Structured.Tests;

/// <summary>
/// The tiny-pycoder tokenizer (byte-level BPE, 4096 ids, <c>&lt;|endoftext|&gt;</c> = 0 is end-of-sequence) and its
/// vocabulary as bytes: each token string mapped back through GPT-2's byte alphabet, special tokens as null.
/// </summary>
internal static class Pycoder
{
    public const int EndOfText = 0;
    public const int Pad = 1;

    public static readonly HfTokenizer Tokenizer =
        HfTokenizer.Load(Path.Combine(AppContext.BaseDirectory, "models", "tiny-pycoder", "tokenizer.json"));

    public static readonly byte[]?[] TokenBytes = BuildTokenBytes();

    public static readonly TokenVocabulary Vocabulary = new(TokenBytes, [EndOfText]);

    /// <summary>The id of a token given as its bytes (as text), or a failed assertion.</summary>
    public static int Id(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        for (int id = 0; id < TokenBytes.Length; id++)
        {
            if (TokenBytes[id] is { } candidate && candidate.AsSpan().SequenceEqual(bytes))
            {
                return id;
            }
        }

        Assert.Fail($"pycoder has no token '{text}'");
        return -1;
    }

    private static byte[]?[] BuildTokenBytes()
    {
        // GPT-2's alphabet: printable Latin-1 bytes stand for themselves, the others for U+0100 onwards in byte order.
        var charToByte = new Dictionary<char, byte>();
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is (>= 0x21 and <= 0x7E) or (>= 0xA1 and <= 0xAC) or (>= 0xAE and <= 0xFF);
            charToByte[printable ? (char)b : (char)next++] = (byte)b;
        }

        var table = new byte[]?[Tokenizer.VocabularySize];
        for (int id = 0; id < table.Length; id++)
        {
            string? token = Tokenizer.IdToToken(id);
            if (token is null || Tokenizer.IsSpecial(id))
            {
                continue;
            }

            table[id] = token.All(charToByte.ContainsKey) ? token.Select(c => charToByte[c]).ToArray() : Encoding.UTF8.GetBytes(token);
        }

        return table;
    }
}
