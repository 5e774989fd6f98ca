// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured.Internal;

/// <summary>
/// An immutable byte trie over a small set of byte strings (serialized enum values, quoted property names). Node 0 is
/// the root (the empty prefix); each node lists its children in a flat array, searched linearly (tries here are small).
/// </summary>
internal sealed class LiteralTrie
{
    private readonly int[] _childStart;
    private readonly int[] _childCount;
    private readonly byte[] _childBytes;
    private readonly int[] _childNodes;
    private readonly int[] _terminal;

    /// <summary>Builds the trie; string <c>i</c> makes its last node terminal with value <c>i</c>.</summary>
    /// <param name="strings">The byte strings, none empty and none repeated.</param>
    public LiteralTrie(IReadOnlyList<byte[]> strings)
    {
        // Build with dictionaries, then flatten.
        var children = new List<SortedDictionary<byte, int>> { new() };
        var terminal = new List<int> { -1 };
        for (int i = 0; i < strings.Count; i++)
        {
            int node = 0;
            foreach (byte b in strings[i])
            {
                if (!children[node].TryGetValue(b, out int next))
                {
                    next = children.Count;
                    children.Add(new SortedDictionary<byte, int>());
                    terminal.Add(-1);
                    children[node][b] = next;
                }

                node = next;
            }

            if (node == 0 || terminal[node] >= 0)
            {
                throw new ArgumentException("Literal strings must be non-empty and distinct.", nameof(strings));
            }

            terminal[node] = i;
        }

        int count = children.Count;
        _childStart = new int[count];
        _childCount = new int[count];
        _terminal = [.. terminal];
        var bytes = new List<byte>();
        var nodes = new List<int>();
        for (int n = 0; n < count; n++)
        {
            _childStart[n] = bytes.Count;
            _childCount[n] = children[n].Count;
            foreach (KeyValuePair<byte, int> child in children[n])
            {
                bytes.Add(child.Key);
                nodes.Add(child.Value);
            }
        }

        _childBytes = [.. bytes];
        _childNodes = [.. nodes];
    }

    /// <summary>The number of nodes, root included.</summary>
    public int NodeCount => _terminal.Length;

    /// <summary>Returns the child of <paramref name="node"/> along <paramref name="b"/>, or -1.</summary>
    /// <param name="node">A node.</param>
    /// <param name="b">The next byte.</param>
    public int Child(int node, byte b)
    {
        int start = _childStart[node];
        int end = start + _childCount[node];
        for (int i = start; i < end; i++)
        {
            if (_childBytes[i] == b)
            {
                return _childNodes[i];
            }
        }

        return -1;
    }

    /// <summary>The index of the string that ends at <paramref name="node"/>, or -1.</summary>
    /// <param name="node">A node.</param>
    public int Terminal(int node) => _terminal[node];

    /// <summary>Whether any string continues past <paramref name="node"/>.</summary>
    /// <param name="node">A node.</param>
    public bool HasChildren(int node) => _childCount[node] > 0;

    /// <summary>The children of <paramref name="node"/> as (byte, node) pairs, for precomputations.</summary>
    /// <param name="node">A node.</param>
    /// <param name="index">Which child, from 0 to the count less one.</param>
    /// <param name="b">The child's byte.</param>
    /// <returns>The child node, or -1 when <paramref name="index"/> is past the last child.</returns>
    public int ChildAt(int node, int index, out byte b)
    {
        if (index >= _childCount[node])
        {
            b = 0;
            return -1;
        }

        b = _childBytes[_childStart[node] + index];
        return _childNodes[_childStart[node] + index];
    }
}
