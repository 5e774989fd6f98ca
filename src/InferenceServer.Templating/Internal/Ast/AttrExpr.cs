// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>Attribute access <c>obj.name</c> (attribute first, then item).</summary>
internal sealed class AttrExpr(Expr target, string name) : Expr
{
    /// <summary>The object expression.</summary>
    public Expr Target { get; } = target;

    /// <summary>The attribute name.</summary>
    public string Name { get; } = name;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope) => PyOps.GetAttribute(Target.Evaluate(state, scope), Name);
}
