// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary><c>not x</c>.</summary>
internal sealed class NotExpr(Expr operand) : Expr
{
    /// <summary>The negated expression.</summary>
    public Expr Operand { get; } = operand;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope) => !PyOps.IsTruthy(Operand.Evaluate(state, scope));
}
