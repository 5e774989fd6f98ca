// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured.Internal;

/// <summary>
/// An immutable byte trie over a set of byte strings (serialized enum values, quoted property names). Node 0 is the
/// root (the empty prefix); each node lists its children, in byte order, in a flat array searched linearly. Every
/// node's index is greater than its parent's (the nodes are numbered in preorder), so a pass in ascending index order
/// visits parents first and one in descending order children first. Built without per-node collections: about 17
/// bytes per node, so its size is a small multiple of the strings' total length.
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
        // Sorted, the strings spell the trie in preorder: each adds the nodes past its common prefix with the previous.
        int[] order = new int[strings.Count];
        int total = 1;
        for (int i = 0; i < order.Length; i++)
        {
            order[i] = i;
            total += strings[i].Length;
            if (strings[i].Length == 0)
            {
                throw new ArgumentException("Literal strings must be non-empty and distinct.", nameof(strings));
            }
        }

        Array.Sort(order, (x, y) => strings[x].AsSpan().SequenceCompareTo(strings[y]));

        // Upper bound on the node count; trimmed below.
        int[] parent = new int[total];
        byte[] nodeByte = new byte[total];
        int[] terminal = new int[total];
        int[] path = new int[1];
        int count = 1;
        terminal[0] = -1;
        byte[] previous = [];
        foreach (int index in order)
        {
            byte[] current = strings[index];
            int common = current.AsSpan().CommonPrefixLength(previous);
            if (common == current.Length)
            {
                // Equal to the previous one (a proper prefix would sort before it).
                throw new ArgumentException("Literal strings must be non-empty and distinct.", nameof(strings));
            }

            if (path.Length < current.Length + 1)
            {
                Array.Resize(ref path, Math.Max(current.Length + 1, path.Length * 2));
            }

            for (int depth = common; depth < current.Length; depth++)
            {
                parent[count] = path[depth];
                nodeByte[count] = current[depth];
                terminal[count] = -1;
                path[depth + 1] = count;
                count++;
            }

            terminal[path[current.Length]] = index;
            previous = current;
        }

        // Children in preorder come in ascending byte order (the strings are sorted), so one pass groups them.
        _childCount = new int[count];
        for (int n = 1; n < count; n++)
        {
            _childCount[parent[n]]++;
        }

        _childStart = new int[count];
        for (int n = 1; n < count; n++)
        {
            _childStart[n] = _childStart[n - 1] + _childCount[n - 1];
        }

        int[] filled = new int[count];
        _childBytes = new byte[Math.Max(0, count - 1)];
        _childNodes = new int[Math.Max(0, count - 1)];
        for (int n = 1; n < count; n++)
        {
            int p = parent[n];
            int slot = _childStart[p] + filled[p]++;
            _childBytes[slot] = nodeByte[n];
            _childNodes[slot] = n;
        }

        _terminal = terminal.AsSpan(0, count).ToArray();
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

    /// <summary>The parent of every node (the root's is -1), for passes that run from the leaves up.</summary>
    /// <returns>An array indexed by node.</returns>
    public int[] Parents()
    {
        int[] parents = new int[NodeCount];
        parents[0] = -1;
        for (int n = 0; n < NodeCount; n++)
        {
            for (int i = 0; i < _childCount[n]; i++)
            {
                parents[_childNodes[_childStart[n] + i]] = n;
            }
        }

        return parents;
    }
}
