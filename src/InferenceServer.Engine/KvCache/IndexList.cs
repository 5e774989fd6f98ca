// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.KvCache;

/// <summary>
/// A doubly linked list over the indices [0, capacity), stored in two arrays: append at the tail, remove any member, read
/// the head, all O(1) and allocation-free. The KV-cache manager's free list (least recently freed first) and the host
/// tier's LRU order of cached slots. An index is in the list at most once; the caller tracks membership.
/// </summary>
internal sealed class IndexList
{
    /// <summary>No index: the head of an empty list.</summary>
    public const int None = -1;

    private readonly int[] _previous;
    private readonly int[] _next;
    private int _tail = None;

    /// <summary>Creates an empty list over indices [0, <paramref name="capacity"/>).</summary>
    public IndexList(int capacity)
    {
        _previous = new int[capacity];
        _next = new int[capacity];
    }

    /// <summary>The first (oldest) index, or <see cref="None"/>.</summary>
    public int Head { get; private set; } = None;

    /// <summary>Appends <paramref name="index"/> (not in the list) at the tail.</summary>
    public void Append(int index)
    {
        _previous[index] = _tail;
        _next[index] = None;
        if (_tail == None)
        {
            Head = index;
        }
        else
        {
            _next[_tail] = index;
        }

        _tail = index;
    }

    /// <summary>Removes <paramref name="index"/> (in the list).</summary>
    public void Remove(int index)
    {
        var previous = _previous[index];
        var next = _next[index];
        if (previous == None)
        {
            Head = next;
        }
        else
        {
            _next[previous] = next;
        }

        if (next == None)
        {
            _tail = previous;
        }
        else
        {
            _previous[next] = previous;
        }

        _previous[index] = None;
        _next[index] = None;
    }
}
