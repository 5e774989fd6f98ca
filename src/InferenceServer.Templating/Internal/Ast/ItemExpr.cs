// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>Subscript <c>obj[key]</c> (item first, then attribute).</summary>
internal sealed class ItemExpr(Expr target, Expr key) : Expr
{
    /// <summary>The object expression.</summary>
    public Expr Target { get; } = target;

    /// <summary>The key expression.</summary>
    public Expr Key { get; } = key;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope)
        => PyOps.GetItem(Target.Evaluate(state, scope), Key.Evaluate(state, scope));
}
