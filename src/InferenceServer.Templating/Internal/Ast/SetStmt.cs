// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary><c>{% set target = value %}</c>.</summary>
internal sealed class SetStmt(AssignTarget target, Expr value) : Stmt
{
    /// <summary>The assigned target.</summary>
    public AssignTarget Target { get; } = target;

    /// <summary>The assigned expression.</summary>
    public Expr Value { get; } = value;

    /// <inheritdoc/>
    public override Flow Execute(RenderState state, Scope scope)
    {
        Target.Assign(scope, Value.Evaluate(state, scope));
        return Flow.Normal;
    }
}
