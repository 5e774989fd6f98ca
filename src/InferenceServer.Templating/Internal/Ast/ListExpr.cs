// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>A list literal <c>[a, b]</c> or tuple <c>(a, b)</c>.</summary>
internal sealed class ListExpr(Expr[] items, bool isTuple) : Expr
{
    /// <summary>The element expressions.</summary>
    public Expr[] Items { get; } = items;

    /// <summary>Whether it is a tuple.</summary>
    public bool IsTuple { get; } = isTuple;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope)
    {
        var values = new List<object?>(Items.Length);
        foreach (Expr item in Items)
        {
            values.Add(item.Evaluate(state, scope));
        }

        return new PyList(values, IsTuple);
    }
}
