// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary><c>{% if %}...{% elif %}...{% else %}...{% endif %}</c>.</summary>
internal sealed class IfStmt(Expr[] conditions, Stmt[][] bodies, Stmt[]? otherwise) : Stmt
{
    /// <summary>The <c>if</c> and <c>elif</c> conditions.</summary>
    public Expr[] Conditions { get; } = conditions;

    /// <summary>The bodies, parallel to <see cref="Conditions"/>.</summary>
    public Stmt[][] Bodies { get; } = bodies;

    /// <summary>The <c>else</c> body, or null.</summary>
    public Stmt[]? Otherwise { get; } = otherwise;

    /// <inheritdoc/>
    public override Flow Execute(RenderState state, Scope scope)
    {
        for (int i = 0; i < Conditions.Length; i++)
        {
            if (PyOps.IsTruthy(Conditions[i].Evaluate(state, scope)))
            {
                return ExecuteBody(Bodies[i], state, scope);
            }
        }

        return Otherwise is null ? Flow.Normal : ExecuteBody(Otherwise, state, scope);
    }
}
