// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>An arithmetic or concatenation operator: <c>+ - * / // % ** ~</c>.</summary>
internal sealed class BinaryExpr(string op, Expr left, Expr right) : Expr
{
    /// <summary>The operator text.</summary>
    public string Operator { get; } = op;

    /// <summary>The left operand.</summary>
    public Expr Left { get; } = left;

    /// <summary>The right operand.</summary>
    public Expr Right { get; } = right;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope)
    {
        object? a = Left.Evaluate(state, scope);
        object? b = Right.Evaluate(state, scope);
        return Operator switch
        {
            "+" => PyOps.Add(a, b),
            "-" => PyOps.Subtract(a, b),
            "*" => PyOps.Multiply(a, b),
            "/" => PyOps.Divide(a, b),
            "//" => PyOps.FloorDivide(a, b),
            "%" => PyOps.Modulo(a, b),
            "**" => PyOps.Power(a, b),
            _ => PyOps.Concat(a, b),
        };
    }
}
