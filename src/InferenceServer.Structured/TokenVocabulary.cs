// Licensed under the MIT License. See LICENSE in the repository root.

using InferenceServer.Structured.Internal;

namespace InferenceServer.Structured;

/// <summary>
/// A model's vocabulary as the bytes each token id decodes to, organised as a byte trie in preorder so that a
/// constraint computes the allowed set in one pass that skips every subtree whose prefix is already invalid. Built
/// once per model; immutable and thread-safe.
/// </summary>
public sealed class TokenVocabulary
{
    /// <summary>The longest plain string token, in code points, that the plain fast path covers.</summary>
    internal const int MaxPlainCodePoints = 32;

    // A string without limits, to classify tokens; its count is not capped.
    private static readonly GrammarNode PlainString = new(NodeKind.String) { CountCap = int.MaxValue };

    private readonly byte[]?[] _tokenBytes;
    private readonly bool[] _endOfSequence;

    /// <summary>Builds the vocabulary.</summary>
    /// <param name="tokenBytes">
    /// For each id, the exact bytes it adds to the output (a byte-level BPE token mapped back through the GPT-2 byte
    /// alphabet; a piece of a multi-byte character is fine), or null for special and unusable tokens, which are never
    /// allowed. Empty tokens are never allowed either.
    /// </param>
    /// <param name="endOfSequenceIds">The ids that end generation; allowed exactly when the document is complete.</param>
    /// <exception cref="ArgumentOutOfRangeException">An end-of-sequence id is not an id of the vocabulary.</exception>
    public TokenVocabulary(IReadOnlyList<byte[]?> tokenBytes, IReadOnlyCollection<int> endOfSequenceIds)
    {
        ArgumentNullException.ThrowIfNull(tokenBytes);
        ArgumentNullException.ThrowIfNull(endOfSequenceIds);
        Size = tokenBytes.Count;
        _tokenBytes = new byte[]?[Size];
        _endOfSequence = new bool[Size];
        var eos = new List<int>();
        foreach (int id in endOfSequenceIds)
        {
            if ((uint)id >= (uint)Size)
            {
                throw new ArgumentOutOfRangeException(nameof(endOfSequenceIds), id, $"End-of-sequence id {id} is not below the vocabulary size {Size}.");
            }

            if (!_endOfSequence[id])
            {
                _endOfSequence[id] = true;
                eos.Add(id);
            }
        }

        EndOfSequenceIds = [.. eos];
        var usable = new List<int>(Size);
        for (int id = 0; id < Size; id++)
        {
            byte[]? bytes = tokenBytes[id];
            _tokenBytes[id] = bytes is null ? null : (byte[])bytes.Clone();
            if (bytes is { Length: > 0 } && !_endOfSequence[id])
            {
                usable.Add(id);
            }
        }

        Trie = new VocabularyTrie(_tokenBytes, usable);

        // Tokens that are plain string content: allowed inside any string whose length limit leaves room for them.
        var plain = new List<int>();
        var plainCodePoints = new List<int>();
        var rest = new List<int>();
        foreach (int id in usable)
        {
            int codePoints = PlainStringCodePoints(_tokenBytes[id]!);
            if (codePoints > 0)
            {
                plain.Add(id);
                plainCodePoints.Add(codePoints);
            }
            else
            {
                rest.Add(id);
            }
        }

        NonPlainTrie = new VocabularyTrie(_tokenBytes, rest);
        int words = (Size + 63) >> 6;
        PlainUpTo = new ulong[MaxPlainCodePoints + 1][];
        for (int k = 0; k <= MaxPlainCodePoints; k++)
        {
            PlainUpTo[k] = new ulong[words];
            for (int i = 0; i < plain.Count; i++)
            {
                if (plainCodePoints[i] <= k)
                {
                    PlainUpTo[k][plain[i] >> 6] |= 1UL << (plain[i] & 63);
                }
            }
        }
    }

    /// <summary>The number of ids.</summary>
    public int Size { get; }

    /// <summary>The end-of-sequence ids, distinct.</summary>
    internal int[] EndOfSequenceIds { get; }

    /// <summary>The trie of every usable token (not special, not empty, not end-of-sequence).</summary>
    internal VocabularyTrie Trie { get; }

    /// <summary>The trie of the usable tokens that are not plain string content.</summary>
    internal VocabularyTrie NonPlainTrie { get; }

    /// <summary>
    /// Index k: the bitset of the plain string tokens of at most k code points. A plain string token is complete,
    /// valid UTF-8 with no quote, backslash or control character, of at most <see cref="MaxPlainCodePoints"/> code
    /// points: inside a string it is allowed whatever the state, as long as the length limit leaves room.
    /// </summary>
    internal ulong[][] PlainUpTo { get; }

    /// <summary>Whether <paramref name="id"/> is an end-of-sequence id.</summary>
    /// <param name="id">A token id.</param>
    internal bool IsEndOfSequence(int id) => _endOfSequence[id];

    /// <summary>The bytes of <paramref name="id"/>, or null for special tokens.</summary>
    /// <param name="id">A token id.</param>
    internal byte[]? BytesOf(int id) => _tokenBytes[id];

    // The code points of a plain string token, or 0 when it is not one.
    private static int PlainStringCodePoints(byte[] bytes)
    {
        int phase = Phases.StringBody;
        int count = 0;
        int detail = 0;
        foreach (byte b in bytes)
        {
            if (b is (byte)'"' or (byte)'\\'
                || ScalarSteps.String(PlainString, ref phase, ref count, ref detail, b) != StepResult.Continue)
            {
                return 0;
            }
        }

        return phase == Phases.StringBody && count <= MaxPlainCodePoints ? count : 0;
    }
}
