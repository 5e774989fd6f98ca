// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary><c>{% with a = 1 %}body{% endwith %}</c> (and transformers' <c>{% generation %}</c>): the body in its own frame.</summary>
internal sealed class WithStmt(AssignTarget[] targets, Expr[] values, Stmt[] body) : Stmt
{
    /// <summary>The assigned targets.</summary>
    public AssignTarget[] Targets { get; } = targets;

    /// <summary>The values, parallel to <see cref="Targets"/>, evaluated in the outer frame.</summary>
    public Expr[] Values { get; } = values;

    /// <summary>The body.</summary>
    public Stmt[] Body { get; } = body;

    /// <inheritdoc/>
    public override Flow Execute(RenderState state, Scope scope)
    {
        var inner = new Scope(scope);
        for (int i = 0; i < Targets.Length; i++)
        {
            Targets[i].Assign(inner, Values[i].Evaluate(state, scope));
        }

        return ExecuteBody(Body, state, inner);
    }
}
