// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>A Python list, or (when <see cref="IsTuple"/>) tuple: the two differ only in how they print and compare.</summary>
internal sealed class PyList
{
    /// <summary>An empty list.</summary>
    public PyList()
    {
        Items = [];
    }

    /// <summary>A list (or tuple) over <paramref name="items"/>, which it takes ownership of.</summary>
    public PyList(List<object?> items, bool isTuple = false)
    {
        Items = items;
        IsTuple = isTuple;
    }

    /// <summary>The elements.</summary>
    public List<object?> Items { get; }

    /// <summary>Whether this is a tuple (prints <c>(1, 2)</c>) rather than a list (<c>[1, 2]</c>).</summary>
    public bool IsTuple { get; }

    /// <summary>The number of elements.</summary>
    public int Count => Items.Count;

    /// <summary>The element at <paramref name="index"/>.</summary>
    public object? this[int index] => Items[index];

    /// <summary>A two-element tuple.</summary>
    public static PyList Pair(object? first, object? second) => new([first, second], isTuple: true);
}
