// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured;

/// <summary>
/// A model's vocabulary as the bytes each token id decodes to, organised as a byte trie in preorder so that a
/// constraint computes the allowed set in one pass that skips every subtree whose prefix is already invalid. Built
/// once per model; immutable and thread-safe.
/// </summary>
public sealed class TokenVocabulary
{
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

        int[] sorted = [.. usable];
        Array.Sort(sorted, (x, y) => _tokenBytes[x].AsSpan().SequenceCompareTo(_tokenBytes[y]));
        SortedIds = sorted;
        BuildTrie(sorted);
    }

    /// <summary>The number of ids.</summary>
    public int Size { get; }

    /// <summary>The end-of-sequence ids, distinct.</summary>
    internal int[] EndOfSequenceIds { get; }

    /// <summary>The usable ids sorted by their bytes; each trie node's tokens are a range of it.</summary>
    internal int[] SortedIds { get; }

    /// <summary>Per trie node in preorder: the byte on the edge into it.</summary>
    internal byte[] NodeByte { get; private set; } = [];

    /// <summary>Per trie node: its depth (the root, not stored, is depth 0).</summary>
    internal int[] NodeDepth { get; private set; } = [];

    /// <summary>Per trie node: the preorder index just past its subtree.</summary>
    internal int[] NodeEnd { get; private set; } = [];

    /// <summary>Per trie node: the first index in <see cref="SortedIds"/> of the tokens whose bytes end here.</summary>
    internal int[] NodeTokenStart { get; private set; } = [];

    /// <summary>Per trie node: how many tokens end here.</summary>
    internal int[] NodeTokenCount { get; private set; } = [];

    /// <summary>The longest token, in bytes.</summary>
    internal int MaxDepth { get; private set; }

    /// <summary>Whether <paramref name="id"/> is an end-of-sequence id.</summary>
    /// <param name="id">A token id.</param>
    internal bool IsEndOfSequence(int id) => _endOfSequence[id];

    /// <summary>The bytes of <paramref name="id"/>, or null for special tokens.</summary>
    /// <param name="id">A token id.</param>
    internal byte[]? BytesOf(int id) => _tokenBytes[id];

    private void BuildTrie(int[] sorted)
    {
        var nodeByte = new List<byte>();
        var depth = new List<int>();
        var end = new List<int>();
        var tokenStart = new List<int>();
        var tokenCount = new List<int>();
        int maxDepth = 0;
        foreach (int id in sorted)
        {
            maxDepth = Math.Max(maxDepth, _tokenBytes[id]!.Length);
        }

        int[] path = new int[maxDepth + 1];
        int pathLength = 0;
        byte[]? previous = null;
        for (int k = 0; k < sorted.Length; k++)
        {
            byte[] token = _tokenBytes[sorted[k]]!;
            int common = previous is null ? 0 : token.AsSpan().CommonPrefixLength(previous);
            while (pathLength > common)
            {
                end[path[pathLength--]] = nodeByte.Count;
            }

            if (common == token.Length)
            {
                // The same bytes as the previous token: sorted, so its node is the path's last.
                tokenCount[path[pathLength]]++;
            }
            else
            {
                for (int d = common + 1; d <= token.Length; d++)
                {
                    path[d] = nodeByte.Count;
                    nodeByte.Add(token[d - 1]);
                    depth.Add(d);
                    end.Add(-1);
                    tokenStart.Add(k);
                    tokenCount.Add(0);
                }

                pathLength = token.Length;
                tokenStart[path[pathLength]] = k;
                tokenCount[path[pathLength]] = 1;
            }

            previous = token;
        }

        while (pathLength > 0)
        {
            end[path[pathLength--]] = nodeByte.Count;
        }

        NodeByte = [.. nodeByte];
        NodeDepth = [.. depth];
        NodeEnd = [.. end];
        NodeTokenStart = [.. tokenStart];
        NodeTokenCount = [.. tokenCount];
        MaxDepth = maxDepth;
    }
}
