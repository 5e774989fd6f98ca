// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary><c>a if test else b</c>; without <c>else</c> a false test yields undefined.</summary>
internal sealed class CondExpr(Expr test, Expr then, Expr? otherwise) : Expr
{
    /// <summary>The condition.</summary>
    public Expr Test { get; } = test;

    /// <summary>The value when the condition holds.</summary>
    public Expr Then { get; } = then;

    /// <summary>The value otherwise, or null.</summary>
    public Expr? Otherwise { get; } = otherwise;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope)
    {
        if (PyOps.IsTruthy(Test.Evaluate(state, scope)))
        {
            return Then.Evaluate(state, scope);
        }

        return Otherwise is null ? Undefined.Anonymous : Otherwise.Evaluate(state, scope);
    }
}
