using System.Collections.Concurrent;
using Microsoft.ML.Tokenizers;

namespace InferenceServer.Tokenization;

/// <summary>
/// The tokenizer.json BPE model: Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/> does the merges of each
/// pre-tokenized word (its merge loop is a port of Hugging Face's), with no pre-tokenizer or normalizer of its own;
/// this class adds <c>ignore_merges</c> and a word-level cache.
/// </summary>
internal sealed class BpeModel
{
    private const int CacheCapacity = 100_000;
    private const int MaxCachedWordLength = 256;

    private readonly BpeTokenizer _bpe;
    private readonly IReadOnlyDictionary<string, int> _vocabulary;
    private readonly bool _ignoreMerges;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private int _cacheSize;

    /// <summary>Creates the model.</summary>
    /// <param name="bpe">The library tokenizer built from the vocabulary and merges.</param>
    /// <param name="vocabulary">The model vocabulary.</param>
    /// <param name="ignoreMerges">Whether a word found whole in the vocabulary is emitted as is, without merging.</param>
    public BpeModel(BpeTokenizer bpe, IReadOnlyDictionary<string, int> vocabulary, bool ignoreMerges)
    {
        _bpe = bpe;
        _vocabulary = vocabulary;
        _ignoreMerges = ignoreMerges;
    }

    /// <summary>The model vocabulary (token to id).</summary>
    public IReadOnlyDictionary<string, int> Vocabulary => _vocabulary;

    /// <summary>Appends the ids of one pre-tokenized word.</summary>
    /// <param name="word">A non-empty word, already in the model's alphabet (byte-level characters for ByteLevel).</param>
    /// <param name="output">Receives the ids.</param>
    public void Tokenize(string word, List<int> output)
    {
        if (_ignoreMerges && _vocabulary.TryGetValue(word, out int wholeId))
        {
            output.Add(wholeId);
            return;
        }

        if (_cache.TryGetValue(word, out int[]? cached))
        {
            output.AddRange(cached);
            return;
        }

        IReadOnlyList<int> ids = _bpe.EncodeToIds(word.AsSpan(), considerPreTokenization: false, considerNormalization: false);
        var result = new int[ids.Count];
        for (int i = 0; i < result.Length; i++)
        {
            result[i] = ids[i];
        }

        // ConcurrentDictionary.Count takes every lock: keep a separate, approximate size instead.
        if (word.Length <= MaxCachedWordLength && Volatile.Read(ref _cacheSize) < CacheCapacity && _cache.TryAdd(word, result))
        {
            Interlocked.Increment(ref _cacheSize);
        }

        output.AddRange(result);
    }
}
