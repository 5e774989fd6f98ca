// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>
/// A frame of variables: the render's top level, a loop iteration, a macro call, a <c>with</c> block. Lookups walk
/// out to the parent and finally to the global functions; assignments go to this frame, as Jinja2's scoping does
/// (a <c>set</c> inside a loop does not leak out of it; that is what <c>namespace()</c> is for).
/// </summary>
internal sealed class Scope
{
    private Dictionary<string, object?>? _variables;

    /// <summary>Creates a frame inside <paramref name="parent"/> (null for the outermost).</summary>
    public Scope(Scope? parent)
    {
        Parent = parent;
    }

    /// <summary>The enclosing frame.</summary>
    public Scope? Parent { get; }

    /// <summary>Looks <paramref name="name"/> up here, then outwards, then in the globals.</summary>
    public bool TryLookup(string name, out object? value)
    {
        for (Scope? scope = this; scope is not null; scope = scope.Parent)
        {
            if (scope._variables is not null && scope._variables.TryGetValue(name, out value))
            {
                return true;
            }
        }

        return Globals.Functions.TryGetValue(name, out value);
    }

    /// <summary>Whether <paramref name="name"/> is assigned in this frame itself.</summary>
    public bool TryLookupLocal(string name) => _variables is not null && _variables.ContainsKey(name);

    /// <summary>Assigns <paramref name="name"/> in this frame.</summary>
    public void Set(string name, object? value)
    {
        _variables ??= new Dictionary<string, object?>(StringComparer.Ordinal);
        _variables[name] = value;
    }
}
