// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>Unary <c>-x</c> or <c>+x</c>.</summary>
internal sealed class UnaryExpr(char op, Expr operand) : Expr
{
    /// <summary><c>-</c> or <c>+</c>.</summary>
    public char Operator { get; } = op;

    /// <summary>The operand.</summary>
    public Expr Operand { get; } = operand;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope)
    {
        object? value = Operand.Evaluate(state, scope);
        return Operator == '-' ? PyOps.Negate(value) : PyOps.Plus(value);
    }
}
