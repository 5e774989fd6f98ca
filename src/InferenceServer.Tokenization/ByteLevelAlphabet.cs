namespace InferenceServer.Tokenization;

/// <summary>
/// GPT-2's reversible mapping between bytes and printable characters, used by the ByteLevel pre-tokenizer (bytes to
/// characters) and the ByteLevel decoder (characters back to bytes). Printable Latin-1 bytes map to themselves; the
/// others map to U+0100 and up, in byte order.
/// </summary>
internal static class ByteLevelAlphabet
{
    /// <summary>The character that stands for each of the 256 byte values.</summary>
    public static readonly char[] ByteToChar = BuildByteToChar();

    /// <summary>The byte that each character stands for, or -1; indexed by character, shorter than the char range.</summary>
    public static readonly short[] CharToByte = BuildCharToByte(ByteToChar);

    /// <summary>Returns the byte that <paramref name="c"/> stands for, or -1 when it is not a byte-level character.</summary>
    /// <param name="c">A character of a byte-level token.</param>
    public static int ToByte(char c) => c < CharToByte.Length ? CharToByte[c] : -1;

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)next++;
        }

        return map;
    }

    private static short[] BuildCharToByte(char[] byteToChar)
    {
        int max = 0;
        foreach (char c in byteToChar)
        {
            max = Math.Max(max, c);
        }

        var map = new short[max + 1];
        Array.Fill(map, (short)-1);
        for (int b = 0; b < byteToChar.Length; b++)
        {
            map[byteToChar[b]] = (short)b;
        }

        return map;
    }
}
