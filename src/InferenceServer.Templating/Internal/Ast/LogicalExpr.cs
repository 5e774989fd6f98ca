// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary><c>a and b</c> / <c>a or b</c>, short-circuiting and yielding an operand, as in Python.</summary>
internal sealed class LogicalExpr(bool isAnd, Expr left, Expr right) : Expr
{
    /// <summary>True for <c>and</c>, false for <c>or</c>.</summary>
    public bool IsAnd { get; } = isAnd;

    /// <summary>The left operand.</summary>
    public Expr Left { get; } = left;

    /// <summary>The right operand.</summary>
    public Expr Right { get; } = right;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope)
    {
        object? a = Left.Evaluate(state, scope);
        return PyOps.IsTruthy(a) == IsAnd ? Right.Evaluate(state, scope) : a;
    }
}
