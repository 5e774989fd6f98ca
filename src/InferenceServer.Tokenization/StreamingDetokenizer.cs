using System.Text;

namespace InferenceServer.Tokenization;

/// <summary>
/// Turns generated token ids into text one id at a time. A multi-byte UTF-8 character split across tokens (emoji,
/// CJK) is held back until the token that completes it arrives, so no half character and no premature U+FFFD is
/// ever returned; the concatenation of all <see cref="Append"/> results and <see cref="Flush"/> equals
/// <see cref="HfTokenizer.Decode"/> of the same ids. Not thread-safe: use one instance per generated sequence.
/// </summary>
public sealed class StreamingDetokenizer
{
    private const int InitialBufferSize = 64;

    private readonly TokenBytesTable _table;
    private readonly bool _skipSpecialTokens;
    private byte[] _pending = new byte[InitialBufferSize];
    private int _pendingLength;
    private bool _anyToken;

    internal StreamingDetokenizer(TokenBytesTable table, bool skipSpecialTokens)
    {
        _table = table;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>
    /// Adds one token and returns the text it completes: possibly empty when the token ends inside a UTF-8
    /// character, or when it is a skipped special token or an unknown id.
    /// </summary>
    /// <param name="tokenId">The next generated token id.</param>
    /// <returns>The newly completed text.</returns>
    public string Append(int tokenId)
    {
        if (!_table.TryGetBytes(tokenId, _skipSpecialTokens, out ReadOnlySpan<byte> bytes))
        {
            return string.Empty;
        }

        bool separator = _table.Kind == DecoderKind.JoinWithSpaces && _anyToken;
        _anyToken = true;
        int needed = _pendingLength + bytes.Length + (separator ? 1 : 0);
        if (needed > _pending.Length)
        {
            Array.Resize(ref _pending, Math.Max(needed, _pending.Length * 2));
        }

        if (separator)
        {
            _pending[_pendingLength++] = (byte)' ';
        }

        bytes.CopyTo(_pending.AsSpan(_pendingLength));
        _pendingLength += bytes.Length;

        int ready = _pendingLength - Utf8Tail.IncompleteLength(_pending.AsSpan(0, _pendingLength));
        if (ready == 0)
        {
            return string.Empty;
        }

        string text = Encoding.UTF8.GetString(_pending, 0, ready);
        _pending.AsSpan(ready, _pendingLength - ready).CopyTo(_pending);
        _pendingLength -= ready;
        return text;
    }

    /// <summary>
    /// Returns whatever is still held back and resets the pending bytes; an incomplete trailing UTF-8 sequence becomes
    /// U+FFFD, as Hugging Face's decode gives for it.
    /// </summary>
    /// <returns>The remaining text, possibly empty.</returns>
    public string Flush()
    {
        if (_pendingLength == 0)
        {
            return string.Empty;
        }

        string text = Encoding.UTF8.GetString(_pending, 0, _pendingLength);
        _pendingLength = 0;
        return text;
    }
}
