// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>The <c>loop</c> variable of a <c>for</c> statement: position, length, neighbours, <c>cycle</c> and <c>changed</c>.</summary>
internal sealed class LoopContext
{
    private static readonly object NotChanged = new();

    private readonly List<object?> _items;
    private object? _lastChanged = NotChanged;

    /// <summary>Creates the loop over <paramref name="items"/> at nesting <paramref name="depth0"/>.</summary>
    public LoopContext(List<object?> items, int depth0)
    {
        _items = items;
        Depth0 = depth0;
    }

    /// <summary>The current 0-based position.</summary>
    public int Index0 { get; set; }

    /// <summary>The 0-based nesting depth of the loop.</summary>
    public int Depth0 { get; }

    /// <summary>The number of items.</summary>
    public int Length => _items.Count;

    /// <summary>The value of <c>loop.&lt;name&gt;</c>, or null when there is no such attribute.</summary>
    public bool TryGetAttribute(string name, out object? value)
    {
        int i = Index0;
        int n = _items.Count;
        value = name switch
        {
            "index" => (long)(i + 1),
            "index0" => (long)i,
            "revindex" => (long)(n - i),
            "revindex0" => (long)(n - i - 1),
            "first" => i == 0,
            "last" => i == n - 1,
            "length" => (long)n,
            "depth" => (long)(Depth0 + 1),
            "depth0" => (long)Depth0,
            "previtem" => i > 0 ? _items[i - 1] : new Undefined("there is no previous item"),
            "nextitem" => i < n - 1 ? _items[i + 1] : new Undefined("there is no next item"),
            "cycle" or "changed" => new BoundMethod(this, name),
            _ => NotChanged,
        };
        if (ReferenceEquals(value, NotChanged))
        {
            value = null;
            return false;
        }

        return true;
    }

    /// <summary><c>loop.cycle(a, b, ...)</c>: the argument at the current index, round robin.</summary>
    public object? Cycle(CallArgs args)
        => args.Count == 0
            ? throw ChatTemplateException.Runtime("TypeError: no items for cycling given")
            : args.Positional[Index0 % args.Count];

    /// <summary><c>loop.changed(value)</c>: true when the value differs from the previous call's.</summary>
    public bool Changed(CallArgs args)
    {
        object? value = args.Count == 1 ? args.Positional[0] : new PyList([.. args.Positional], isTuple: true);
        if (!ReferenceEquals(_lastChanged, NotChanged) && PyOps.AreEqual(_lastChanged, value))
        {
            return false;
        }

        _lastChanged = value;
        return true;
    }
}
