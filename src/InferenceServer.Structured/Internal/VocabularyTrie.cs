// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured.Internal;

/// <summary>
/// A byte trie over a set of tokens, stored in preorder: each node has the byte on its incoming edge, its depth and
/// the index just past its subtree, so a walk goes node by node and skips a whole subtree when its prefix is dead.
/// The root (the empty prefix) is implicit at depth 0.
/// </summary>
internal sealed class VocabularyTrie
{
    /// <summary>Builds the trie of <paramref name="ids"/>.</summary>
    /// <param name="tokenBytes">Every id's bytes.</param>
    /// <param name="ids">The ids to include, none with null or empty bytes.</param>
    public VocabularyTrie(byte[]?[] tokenBytes, List<int> ids)
    {
        int[] sorted = [.. ids];
        Array.Sort(sorted, (x, y) => tokenBytes[x].AsSpan().SequenceCompareTo(tokenBytes[y]));
        SortedIds = sorted;

        var nodeByte = new List<byte>();
        var depth = new List<int>();
        var end = new List<int>();
        var tokenStart = new List<int>();
        var tokenCount = new List<int>();
        int maxDepth = 0;
        foreach (int id in sorted)
        {
            maxDepth = Math.Max(maxDepth, tokenBytes[id]!.Length);
        }

        // path[d] is the node at depth d on the way to the previous token.
        int[] path = new int[maxDepth + 1];
        int pathLength = 0;
        byte[]? previous = null;
        for (int k = 0; k < sorted.Length; k++)
        {
            byte[] token = tokenBytes[sorted[k]]!;
            int common = previous is null ? 0 : token.AsSpan().CommonPrefixLength(previous);
            while (pathLength > common)
            {
                end[path[pathLength--]] = nodeByte.Count;
            }

            if (common == token.Length)
            {
                // The same bytes as the previous token (sorted, so adjacent): its node is the path's last.
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

    /// <summary>The ids sorted by their bytes; each node's tokens are a range of it.</summary>
    public int[] SortedIds { get; }

    /// <summary>Per node: the byte on the edge into it.</summary>
    public byte[] NodeByte { get; }

    /// <summary>Per node: its depth, from 1.</summary>
    public int[] NodeDepth { get; }

    /// <summary>Per node: the preorder index just past its subtree.</summary>
    public int[] NodeEnd { get; }

    /// <summary>Per node: the first index in <see cref="SortedIds"/> of the tokens whose bytes end here.</summary>
    public int[] NodeTokenStart { get; }

    /// <summary>Per node: how many tokens end here.</summary>
    public int[] NodeTokenCount { get; }

    /// <summary>The longest token, in bytes.</summary>
    public int MaxDepth { get; }
}
