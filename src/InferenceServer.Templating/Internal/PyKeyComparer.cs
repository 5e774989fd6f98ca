// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>Python's key equality for dict keys: <c>1 == 1.0 == True</c>, strings by ordinal, tuples by elements.</summary>
internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    /// <summary>The shared instance.</summary>
    public static readonly PyKeyComparer Instance = new();

    /// <inheritdoc/>
    public new bool Equals(object? x, object? y) => PyOps.AreEqual(x, y);

    /// <inheritdoc/>
    public int GetHashCode(object obj) => obj switch
    {
        string s => StringComparer.Ordinal.GetHashCode(s),
        bool b => b ? 1 : 0,
        long l => l.GetHashCode(),
        double d => d == Math.Floor(d) && Math.Abs(d) < 9.2e18 ? ((long)d).GetHashCode() : d.GetHashCode(),
        PyList list => HashList(list),
        _ => obj.GetHashCode(),
    };

    private int HashList(PyList list)
    {
        var hash = default(HashCode);
        foreach (object? item in list.Items)
        {
            hash.Add(item is null ? 0 : GetHashCode(item));
        }

        return hash.ToHashCode();
    }
}
