using System.Text;

namespace InferenceServer.Tokenization;

/// <summary>
/// The bytes every token id contributes to decoded text, computed once at load time so that decoding and streaming
/// only copy bytes. Mirrors Hugging Face's ByteLevel decoder: a token whose characters are all byte-level characters
/// becomes those bytes, any other token (an added token with a space, say) its own UTF-8 bytes.
/// </summary>
internal sealed class TokenBytesTable
{
    private readonly byte[] _bytes;
    private readonly int[] _starts;
    private readonly int[] _lengths;
    private readonly bool[] _special;

    /// <summary>Builds the table for ids 0 to <paramref name="tokens"/>.Length - 1.</summary>
    /// <param name="tokens">The token string of each id (added tokens first), or null for ids that have none.</param>
    /// <param name="special">Whether each id is a special added token.</param>
    /// <param name="kind">The declared decoder.</param>
    public TokenBytesTable(string?[] tokens, bool[] special, DecoderKind kind)
    {
        Kind = kind;
        _special = special;
        _starts = new int[tokens.Length];
        _lengths = new int[tokens.Length];
        var buffer = new List<byte>(tokens.Length * 4);
        for (int id = 0; id < tokens.Length; id++)
        {
            string? token = tokens[id];
            _starts[id] = buffer.Count;
            if (token is null)
            {
                _lengths[id] = -1;
                continue;
            }

            if (kind == DecoderKind.ByteLevel && TryAppendByteLevel(token, buffer))
            {
                _lengths[id] = buffer.Count - _starts[id];
                continue;
            }

            buffer.AddRange(Encoding.UTF8.GetBytes(token));
            _lengths[id] = buffer.Count - _starts[id];
        }

        _bytes = buffer.ToArray();
    }

    /// <summary>The declared decoder.</summary>
    public DecoderKind Kind { get; }

    /// <summary>
    /// Returns the bytes of <paramref name="id"/>, or false when the id has no token or is a special token being
    /// skipped (Hugging Face drops both before decoding).
    /// </summary>
    /// <param name="id">A token id.</param>
    /// <param name="skipSpecialTokens">Whether special tokens are left out.</param>
    /// <param name="bytes">The token's bytes.</param>
    public bool TryGetBytes(int id, bool skipSpecialTokens, out ReadOnlySpan<byte> bytes)
    {
        if ((uint)id >= (uint)_lengths.Length || _lengths[id] < 0 || (skipSpecialTokens && _special[id]))
        {
            bytes = default;
            return false;
        }

        bytes = new ReadOnlySpan<byte>(_bytes, _starts[id], _lengths[id]);
        return true;
    }

    private static bool TryAppendByteLevel(string token, List<byte> buffer)
    {
        foreach (char c in token)
        {
            if (ByteLevelAlphabet.ToByte(c) < 0)
            {
                return false;
            }
        }

        foreach (char c in token)
        {
            buffer.Add((byte)ByteLevelAlphabet.ToByte(c));
        }

        return true;
    }
}
