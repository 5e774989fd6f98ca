using System.Buffers;
using System.Text;

namespace InferenceServer.Tokenization;

/// <summary>
/// A tokenizer loaded from a Hugging Face <c>tokenizer.json</c> that encodes and decodes exactly as the Hugging Face
/// <c>tokenizers</c> library does for the components it declares: added tokens matched whole first, then the
/// normalizer, the pre-tokenizer and the BPE model (whose merges run in Microsoft.ML.Tokenizers), then the
/// post-processor when special tokens are requested. Thread-safe: one instance can serve concurrent requests.
/// </summary>
public sealed class HfTokenizer
{
    private readonly TextNormalizer? _normalizer;
    private readonly PreTokenizerStep? _preTokenizer;
    private readonly BpeModel _model;
    private readonly AddedTokenMatcher _rawMatcher;
    private readonly AddedTokenMatcher _normalizedMatcher;
    private readonly SpecialTokenTemplate _template;
    private readonly Dictionary<string, int> _addedTokenIds;
    private readonly string?[] _tokens;
    private readonly bool[] _special;
    private readonly TokenBytesTable _bytes;

    /// <summary>Assembles a tokenizer from the components <see cref="TokenizerJsonLoader"/> built.</summary>
    /// <param name="normalizer">The normalizer, or null.</param>
    /// <param name="preTokenizer">The pre-tokenizer, or null.</param>
    /// <param name="model">The BPE model.</param>
    /// <param name="addedTokens">The added tokens, special or not.</param>
    /// <param name="template">What the post-processor adds when special tokens are requested.</param>
    /// <param name="decoder">The declared decoder.</param>
    internal HfTokenizer(
        TextNormalizer? normalizer,
        PreTokenizerStep? preTokenizer,
        BpeModel model,
        IReadOnlyList<AddedToken> addedTokens,
        SpecialTokenTemplate template,
        DecoderKind decoder)
    {
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _model = model;
        _template = template;

        int maxId = -1;
        foreach (int id in model.Vocabulary.Values)
        {
            maxId = Math.Max(maxId, id);
        }

        _addedTokenIds = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (AddedToken token in addedTokens)
        {
            maxId = Math.Max(maxId, token.Id);
            _addedTokenIds[token.Content] = token.Id;
        }

        VocabularySize = maxId + 1;
        _tokens = new string?[VocabularySize];
        _special = new bool[VocabularySize];
        foreach (KeyValuePair<string, int> entry in model.Vocabulary)
        {
            _tokens[entry.Value] = entry.Key;
        }

        foreach (AddedToken token in addedTokens)
        {
            _tokens[token.Id] = token.Content;
            _special[token.Id] = token.Special;
        }

        _rawMatcher = new AddedTokenMatcher(addedTokens.Where(t => !t.Normalized).Select(t => (t.Content, t)));
        _normalizedMatcher = new AddedTokenMatcher(
            addedTokens.Where(t => t.Normalized).Select(t => (normalizer?.Normalize(t.Content) ?? t.Content, t)));
        _bytes = new TokenBytesTable(_tokens, _special, decoder);
    }

    /// <summary>The number of ids: the largest id of the vocabulary and the added tokens, plus one.</summary>
    public int VocabularySize { get; }

    /// <summary>Loads a tokenizer from a <c>tokenizer.json</c> file.</summary>
    /// <param name="tokenizerJsonPath">The path of the file.</param>
    /// <returns>The tokenizer.</returns>
    /// <exception cref="TokenizerLoadException">The file cannot be read, is invalid, or declares an unsupported component.</exception>
    public static HfTokenizer Load(string tokenizerJsonPath)
    {
        ArgumentNullException.ThrowIfNull(tokenizerJsonPath);
        string json;
        try
        {
            json = File.ReadAllText(tokenizerJsonPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw new TokenizerLoadException($"{tokenizerJsonPath}: cannot read the file: {e.Message}", e);
        }

        return TokenizerJsonLoader.Load(json, tokenizerJsonPath);
    }

    /// <summary>Loads a tokenizer from the text of a <c>tokenizer.json</c>.</summary>
    /// <param name="json">The JSON text.</param>
    /// <param name="sourceName">The name used for the source in error messages (usually the file name).</param>
    /// <returns>The tokenizer.</returns>
    /// <exception cref="TokenizerLoadException">The JSON is invalid or declares an unsupported component.</exception>
    internal static HfTokenizer FromJson(string json, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(json);
        ArgumentNullException.ThrowIfNull(sourceName);
        return TokenizerJsonLoader.Load(json, sourceName);
    }

    /// <summary>Encodes text into token ids.</summary>
    /// <param name="text">The text.</param>
    /// <param name="addSpecialTokens">Whether the post-processor adds its special tokens (BOS and the like).</param>
    /// <returns>The token ids, as Hugging Face's <c>encode(text, add_special_tokens)</c> gives them.</returns>
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>((text.Length / 3) + 4);
        if (addSpecialTokens)
        {
            ids.AddRange(_template.Prefix);
        }

        if (text.Length > 0)
        {
            var words = new List<string>();
            if (_rawMatcher.IsEmpty)
            {
                EncodeUnnormalized(text, ids, words);
            }
            else
            {
                var segments = new List<TextSegment>();
                _rawMatcher.Split(text, segments);
                foreach (TextSegment segment in segments)
                {
                    if (segment.Token is not null)
                    {
                        ids.Add(segment.Token.Id);
                    }
                    else
                    {
                        EncodeUnnormalized(Slice(text, segment), ids, words);
                    }
                }
            }
        }

        if (addSpecialTokens)
        {
            ids.AddRange(_template.Suffix);
        }

        return ids;
    }

    /// <summary>Decodes token ids into text, as Hugging Face's <c>decode(ids, skip_special_tokens)</c> does.</summary>
    /// <param name="ids">The token ids; ids without a token are ignored.</param>
    /// <param name="skipSpecialTokens">Whether special added tokens are left out.</param>
    /// <returns>The text; bytes that are not valid UTF-8 become U+FFFD.</returns>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        bool join = _bytes.Kind == DecoderKind.JoinWithSpaces;
        int total = 0;
        bool any = false;
        foreach (int id in ids)
        {
            if (_bytes.TryGetBytes(id, skipSpecialTokens, out ReadOnlySpan<byte> tokenBytes))
            {
                total += tokenBytes.Length + (join && any ? 1 : 0);
                any = true;
            }
        }

        if (total == 0)
        {
            return string.Empty;
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent(total);
        try
        {
            int position = 0;
            any = false;
            foreach (int id in ids)
            {
                if (_bytes.TryGetBytes(id, skipSpecialTokens, out ReadOnlySpan<byte> tokenBytes))
                {
                    if (join && any)
                    {
                        buffer[position++] = (byte)' ';
                    }

                    tokenBytes.CopyTo(buffer.AsSpan(position));
                    position += tokenBytes.Length;
                    any = true;
                }
            }

            return Encoding.UTF8.GetString(buffer, 0, total);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The bytes token <paramref name="id"/> decodes to on its own (special tokens included).</summary>
    /// <param name="id">A token id.</param>
    /// <param name="bytes">The token's bytes; possibly part of a multi-byte character.</param>
    /// <returns>False for an id without a token.</returns>
    public bool TryGetTokenBytes(int id, out ReadOnlySpan<byte> bytes) => _bytes.TryGetBytes(id, skipSpecialTokens: false, out bytes);

    /// <summary>Whether <paramref name="id"/> is a special added token.</summary>
    /// <param name="id">A token id.</param>
    public bool IsSpecial(int id) => (uint)id < (uint)_special.Length && _special[id];

    /// <summary>Returns the id of a token string (added tokens first, then the model vocabulary), or null.</summary>
    /// <param name="token">The token string, as it appears in tokenizer.json (byte-level characters for BPE tokens).</param>
    internal int? TokenToId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        if (_addedTokenIds.TryGetValue(token, out int added))
        {
            return added;
        }

        return _model.Vocabulary.TryGetValue(token, out int id) ? id : null;
    }

    /// <summary>Returns the token string of an id (added tokens first, then the model vocabulary), or null.</summary>
    /// <param name="id">A token id.</param>
    public string? IdToToken(int id) => (uint)id < (uint)_tokens.Length ? _tokens[id] : null;

    /// <summary>Creates a detokenizer for one stream of generated ids.</summary>
    /// <param name="skipSpecialTokens">Whether special added tokens are left out of the text.</param>
    /// <returns>A new detokenizer with no pending bytes.</returns>
    public StreamingDetokenizer CreateStreamingDetokenizer(bool skipSpecialTokens = false) => new(_bytes, skipSpecialTokens);

    private static string Slice(string text, TextSegment segment)
        => segment.Start == 0 && segment.End == text.Length ? text : text[segment.Start..segment.End];

    // A piece between non-normalized added tokens: normalize it, then look for the normalized added tokens.
    private void EncodeUnnormalized(string piece, List<int> ids, List<string> words)
    {
        string normalized = _normalizer?.Normalize(piece) ?? piece;
        if (normalized.Length == 0)
        {
            return;
        }

        if (_normalizedMatcher.IsEmpty)
        {
            EncodeWords(normalized, ids, words);
            return;
        }

        var segments = new List<TextSegment>();
        _normalizedMatcher.Split(normalized, segments);
        foreach (TextSegment segment in segments)
        {
            if (segment.Token is not null)
            {
                ids.Add(segment.Token.Id);
            }
            else
            {
                EncodeWords(Slice(normalized, segment), ids, words);
            }
        }
    }

    private void EncodeWords(string normalized, List<int> ids, List<string> words)
    {
        if (_preTokenizer is null)
        {
            _model.Tokenize(normalized, ids);
            return;
        }

        words.Clear();
        _preTokenizer.PreTokenize(normalized, words);
        foreach (string word in words)
        {
            _model.Tokenize(word, ids);
        }
    }
}
