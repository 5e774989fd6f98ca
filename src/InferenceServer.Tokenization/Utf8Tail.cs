namespace InferenceServer.Tokenization;

/// <summary>Finds where a byte buffer ends in the middle of a UTF-8 character that later bytes could still complete.</summary>
internal static class Utf8Tail
{
    /// <summary>
    /// Returns how many trailing bytes of <paramref name="bytes"/> are a proper, still valid prefix of a multi-byte
    /// UTF-8 sequence (0 to 3). Everything before them decodes the same whatever bytes follow.
    /// </summary>
    /// <param name="bytes">The bytes decoded so far.</param>
    public static int IncompleteLength(ReadOnlySpan<byte> bytes)
    {
        int max = Math.Min(3, bytes.Length);
        for (int k = 1; k <= max; k++)
        {
            byte lead = bytes[bytes.Length - k];
            if (lead >= 0x80 && lead <= 0xBF)
            {
                // A continuation byte: its lead byte is further back.
                continue;
            }

            int needed = lead switch
            {
                >= 0xC2 and <= 0xDF => 2,
                >= 0xE0 and <= 0xEF => 3,
                >= 0xF0 and <= 0xF4 => 4,
                _ => 0,
            };
            if (needed <= k)
            {
                // ASCII, a byte that can never start a sequence, or a sequence that is already complete.
                return 0;
            }

            if (k >= 2)
            {
                byte second = bytes[bytes.Length - k + 1];
                (byte low, byte high) = lead switch
                {
                    0xE0 => ((byte)0xA0, (byte)0xBF),
                    0xED => ((byte)0x80, (byte)0x9F),
                    0xF0 => ((byte)0x90, (byte)0xBF),
                    0xF4 => ((byte)0x80, (byte)0x8F),
                    _ => ((byte)0x80, (byte)0xBF),
                };
                if (second < low || second > high)
                {
                    return 0;
                }
            }

            return k;
        }

        return 0;
    }
}
