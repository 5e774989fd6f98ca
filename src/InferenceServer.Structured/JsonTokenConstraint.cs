// Licensed under the MIT License. See LICENSE in the repository root.

using System.Numerics;
using InferenceServer.Structured.Internal;

namespace InferenceServer.Structured;

/// <summary>
/// Constrains one generated sequence to a <see cref="JsonGrammar"/>: before each sampling step
/// <see cref="MaskLogits"/> leaves only the tokens after which the output is still a prefix of a valid document (and
/// end-of-sequence only once the document is complete, after which nothing else), and after it <see cref="Accept"/>
/// advances with the sampled token. Not thread-safe: one instance per sequence, used by one thread at a time.
/// </summary>
/// <remarks>
/// One mask's work is bounded by the grammar's <see cref="SchemaLimits.MaxMaskWork"/>: past it
/// <see cref="MaskLogits"/> throws <see cref="ConstraintBudgetExceededException"/> (the engine then ends this sequence
/// alone). Memory per sequence is bounded too: the states, the per-depth walk buffers, 16 cached masks and at most
/// <see cref="JsonMatcher.MaxFrames"/> interned frames.
/// </remarks>
public sealed class JsonTokenConstraint
{
    // Masks cached by single matcher state; cleared when full (inside long strings the state repeats).
    private const int MaskCacheCapacity = 16;

    private readonly TokenVocabulary _vocabulary;
    private readonly JsonMatcher _matcher;
    private readonly MatchState[] _current = new MatchState[JsonMatcher.MaxStates];
    private readonly MatchState[] _stepA = new MatchState[JsonMatcher.MaxStates];
    private readonly MatchState[] _stepB = new MatchState[JsonMatcher.MaxStates];
    private readonly MatchState[] _levels;
    private readonly int[] _levelCounts;
    private readonly Dictionary<MatchState, ulong[]> _maskCache = [];
    private readonly Stack<ulong[]> _spareMasks = new();
    private readonly ulong[] _scratchMask;
    private readonly long _maxWork;
    private int _currentCount;
    private bool _ended;

    /// <summary>Starts a sequence at the beginning of the document.</summary>
    /// <param name="grammar">The grammar the output must match.</param>
    /// <param name="vocabulary">The model's vocabulary.</param>
    public JsonTokenConstraint(JsonGrammar grammar, TokenVocabulary vocabulary)
    {
        ArgumentNullException.ThrowIfNull(grammar);
        ArgumentNullException.ThrowIfNull(vocabulary);
        _vocabulary = vocabulary;
        _matcher = new JsonMatcher(grammar);
        _maxWork = grammar.Limits.MaxMaskWork;
        _current[0] = _matcher.Initial;
        _currentCount = 1;
        _levels = new MatchState[(vocabulary.Trie.MaxDepth + 1) * JsonMatcher.MaxStates];
        _levelCounts = new int[vocabulary.Trie.MaxDepth + 1];
        _scratchMask = new ulong[(vocabulary.Size + 63) >> 6];
    }

    /// <summary>Whether the output so far is a complete document (end-of-sequence is allowed).</summary>
    internal bool IsComplete
    {
        get
        {
            for (int i = 0; i < _currentCount; i++)
            {
                if (_matcher.CanFinish(_current[i]))
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>The frames interned so far (at most <see cref="JsonMatcher.MaxFrames"/>), for tests.</summary>
    internal int FrameCount => _matcher.FrameCount;

    /// <summary>Whether an end-of-sequence token has been accepted; every token is refused afterwards.</summary>
    public bool IsEnded => _ended;

    /// <summary>
    /// Sets the logit of every token that may not come next to <see cref="float.NegativeInfinity"/>, including ids
    /// past the vocabulary (models often pad their output). Allocation-free once the states in play have been seen.
    /// </summary>
    /// <param name="logits">The next-token logits of this sequence, at least <see cref="TokenVocabulary.Size"/> long.</param>
    /// <exception cref="ArgumentException"><paramref name="logits"/> is shorter than the vocabulary.</exception>
    /// <exception cref="ConstraintBudgetExceededException">
    /// The mask needs more work than <see cref="SchemaLimits.MaxMaskWork"/>; the logits are then left partly masked and
    /// the sequence must end.
    /// </exception>
    public void MaskLogits(Span<float> logits)
    {
        int size = _vocabulary.Size;
        if (logits.Length < size)
        {
            throw new ArgumentException($"The logits have {logits.Length} entries, fewer than the vocabulary's {size}.", nameof(logits));
        }

        ulong[] mask = CurrentMask();
        for (int word = 0; word < mask.Length; word++)
        {
            int first = word << 6;
            int count = Math.Min(64, size - first);
            ulong disallowed = ~mask[word];
            if (count < 64)
            {
                disallowed &= (1UL << count) - 1;
            }

            if (disallowed == ulong.MaxValue)
            {
                logits.Slice(first, 64).Fill(float.NegativeInfinity);
                continue;
            }

            while (disallowed != 0)
            {
                logits[first + BitOperations.TrailingZeroCount(disallowed)] = float.NegativeInfinity;
                disallowed &= disallowed - 1;
            }
        }

        logits[size..].Fill(float.NegativeInfinity);
    }

    /// <summary>Whether <paramref name="tokenId"/> may come next (what <see cref="MaskLogits"/> leaves).</summary>
    /// <param name="tokenId">A token id.</param>
    internal bool IsAllowed(int tokenId)
    {
        if ((uint)tokenId >= (uint)_vocabulary.Size || _ended)
        {
            return false;
        }

        if (_vocabulary.IsEndOfSequence(tokenId))
        {
            return IsComplete;
        }

        return Advance(tokenId) > 0;
    }

    /// <summary>Advances past <paramref name="tokenId"/>, the token sampled from the masked logits.</summary>
    /// <param name="tokenId">The sampled token.</param>
    /// <returns>False, with nothing changed, when the token was not allowed (a caller bug).</returns>
    public bool Accept(int tokenId)
    {
        if ((uint)tokenId >= (uint)_vocabulary.Size || _ended)
        {
            return false;
        }

        if (_vocabulary.IsEndOfSequence(tokenId))
        {
            if (!IsComplete)
            {
                return false;
            }

            _ended = true;
            return true;
        }

        int count = Advance(tokenId);
        if (count == 0)
        {
            return false;
        }

        Array.Copy(_stepA, _current, count);
        _currentCount = count;
        return true;
    }

    // Steps the current states through the token's bytes into _stepA; returns how many states survive.
    private int Advance(int tokenId)
    {
        byte[]? bytes = _vocabulary.BytesOf(tokenId);
        if (bytes is null || bytes.Length == 0)
        {
            return 0;
        }

        Array.Copy(_current, _stepA, _currentCount);
        int count = _currentCount;
        foreach (byte b in bytes)
        {
            var sink = new StateSink(_stepB);
            for (int i = 0; i < count; i++)
            {
                _matcher.Step(_stepA[i], b, ref sink);
            }

            count = sink.Count;
            if (count == 0)
            {
                return 0;
            }

            Array.Copy(_stepB, _stepA, count);
        }

        return count;
    }

    private ulong[] CurrentMask()
    {
        if (_ended)
        {
            Array.Clear(_scratchMask);
            SetEndOfSequence(_scratchMask);
            return _scratchMask;
        }

        if (_currentCount != 1)
        {
            ComputeMask(_scratchMask);
            return _scratchMask;
        }

        if (_maskCache.TryGetValue(_current[0], out ulong[]? cached))
        {
            return cached;
        }

        if (_maskCache.Count >= MaskCacheCapacity)
        {
            foreach (ulong[] spare in _maskCache.Values)
            {
                _spareMasks.Push(spare);
            }

            _maskCache.Clear();
        }

        ulong[] mask = _spareMasks.Count > 0 ? _spareMasks.Pop() : new ulong[_scratchMask.Length];
        ComputeMask(mask);
        _maskCache.Add(_current[0], mask);
        return mask;
    }

    /// <summary>Computes the mask of the current states without the cache (for tests and measurements).</summary>
    /// <param name="mask">Receives the allowed ids as bits.</param>
    /// <param name="walkEveryToken">Whether to walk the whole vocabulary trie even inside strings (the reference).</param>
    internal void ComputeMaskUncached(ulong[] mask, bool walkEveryToken)
    {
        if (!walkEveryToken)
        {
            ComputeMask(mask);
            return;
        }

        Array.Clear(mask);
        Walk(_vocabulary.Trie, mask);
        if (IsComplete)
        {
            SetEndOfSequence(mask);
        }
    }

    private void ComputeMask(ulong[] mask)
    {
        int room = _currentCount == 1 ? _matcher.StringRoom(_current[0]) : -1;
        if (room >= 0)
        {
            // Inside a string: every plain content token that fits is allowed; walk only the others.
            _vocabulary.PlainUpTo[Math.Min(room, TokenVocabulary.MaxPlainCodePoints)].CopyTo(mask, 0);
            Walk(_vocabulary.NonPlainTrie, mask);
        }
        else
        {
            Array.Clear(mask);
            Walk(_vocabulary.Trie, mask);
        }

        if (IsComplete)
        {
            SetEndOfSequence(mask);
        }
    }

    // One preorder pass over a vocabulary trie: level d holds the states after the current node's first d bytes.
    private void Walk(VocabularyTrie trie, ulong[] mask)
    {
        const int Stride = JsonMatcher.MaxStates;
        _matcher.Work = 0;
        Array.Copy(_current, _levels, _currentCount);
        _levelCounts[0] = _currentCount;
        byte[] nodeByte = trie.NodeByte;
        int[] nodeDepth = trie.NodeDepth;
        int[] nodeEnd = trie.NodeEnd;
        int[] tokenStart = trie.NodeTokenStart;
        int[] tokenCount = trie.NodeTokenCount;
        int[] sortedIds = trie.SortedIds;
        int node = 0;
        while (node < nodeByte.Length)
        {
            if (_matcher.Work > _maxWork)
            {
                throw new ConstraintBudgetExceededException(_maxWork);
            }

            int depth = nodeDepth[node];
            int parentStart = (depth - 1) * Stride;
            int parentCount = _levelCounts[depth - 1];
            var sink = new StateSink(_levels.AsSpan(depth * Stride, Stride));
            byte b = nodeByte[node];
            for (int i = 0; i < parentCount; i++)
            {
                _matcher.Step(_levels[parentStart + i], b, ref sink);
            }

            _levelCounts[depth] = sink.Count;
            if (sink.Count == 0)
            {
                node = nodeEnd[node];
                continue;
            }

            int start = tokenStart[node];
            int end = start + tokenCount[node];
            for (int k = start; k < end; k++)
            {
                int id = sortedIds[k];
                mask[id >> 6] |= 1UL << (id & 63);
            }

            node++;
        }
    }

    private void SetEndOfSequence(ulong[] mask)
    {
        foreach (int id in _vocabulary.EndOfSequenceIds)
        {
            mask[id >> 6] |= 1UL << (id & 63);
        }
    }
}
