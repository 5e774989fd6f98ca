// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>
/// A Python dict: insertion-ordered (iteration order is what <c>tojson</c>, <c>items()</c> and printing show), keyed
/// with Python equality. <c>None</c> keys are stored under a private sentinel.
/// </summary>
internal sealed class PyDict
{
    private static readonly object NoneKey = new();

    private readonly OrderedDictionary<object, object?> _entries;

    /// <summary>An empty dict with room for <paramref name="capacity"/> entries.</summary>
    public PyDict(int capacity = 0)
    {
        _entries = new OrderedDictionary<object, object?>(capacity, PyKeyComparer.Instance);
    }

    /// <summary>The number of entries.</summary>
    public int Count => _entries.Count;

    /// <summary>Sets (or adds at the end) the value of <paramref name="key"/>.</summary>
    public void Set(object? key, object? value) => _entries[key ?? NoneKey] = value;

    /// <summary>Looks <paramref name="key"/> up.</summary>
    public bool TryGet(object? key, out object? value)
    {
        if (key is PyDict or Undefined)
        {
            value = null;
            return false;
        }

        return _entries.TryGetValue(key ?? NoneKey, out value);
    }

    /// <summary>Whether <paramref name="key"/> is present.</summary>
    public bool ContainsKey(object? key) => key is not PyDict and not Undefined && _entries.ContainsKey(key ?? NoneKey);

    /// <summary>The key at position <paramref name="index"/>.</summary>
    public object? KeyAt(int index)
    {
        object key = _entries.GetAt(index).Key;
        return ReferenceEquals(key, NoneKey) ? null : key;
    }

    /// <summary>The value at position <paramref name="index"/>.</summary>
    public object? ValueAt(int index) => _entries.GetAt(index).Value;
}
