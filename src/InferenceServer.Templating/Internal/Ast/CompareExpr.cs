// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>A comparison chain <c>a &lt; b &lt;= c</c>, <c>x in y</c>, <c>x not in y</c>, evaluated as Python chains them.</summary>
internal sealed class CompareExpr(Expr first, string[] operators, Expr[] operands) : Expr
{
    /// <summary>The leftmost operand.</summary>
    public Expr First { get; } = first;

    /// <summary>The operators: <c>== != &lt; &lt;= &gt; &gt;= in notin</c>.</summary>
    public string[] Operators { get; } = operators;

    /// <summary>The right operands, parallel to <see cref="Operators"/>.</summary>
    public Expr[] Operands { get; } = operands;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope)
    {
        object? left = First.Evaluate(state, scope);
        for (int i = 0; i < Operators.Length; i++)
        {
            object? right = Operands[i].Evaluate(state, scope);
            bool result = Operators[i] switch
            {
                "==" => PyOps.AreEqual(left, right),
                "!=" => !PyOps.AreEqual(left, right),
                "<" => PyOps.Compare(left, right, "<") < 0,
                "<=" => PyOps.Compare(left, right, "<=") <= 0,
                ">" => PyOps.Compare(left, right, ">") > 0,
                ">=" => PyOps.Compare(left, right, ">=") >= 0,
                "in" => PyOps.Contains(right, left),
                _ => !PyOps.Contains(right, left),
            };
            if (!result)
            {
                return false;
            }

            left = right;
        }

        return true;
    }
}
