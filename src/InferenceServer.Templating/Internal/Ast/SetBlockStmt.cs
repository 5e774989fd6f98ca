// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary><c>{% set target | filter %}body{% endset %}</c>: assigns the body's output, optionally filtered.</summary>
internal sealed class SetBlockStmt(AssignTarget target, Stmt[] body, FilterExpr[] filters) : Stmt
{
    /// <summary>The assigned target.</summary>
    public AssignTarget Target { get; } = target;

    /// <summary>The captured body.</summary>
    public Stmt[] Body { get; } = body;

    /// <summary>The filters applied to the captured text, in order.</summary>
    public FilterExpr[] Filters { get; } = filters;

    /// <inheritdoc/>
    public override Flow Execute(RenderState state, Scope scope)
    {
        Target.Assign(scope, CaptureFiltered(Body, Filters, state, scope));
        return Flow.Normal;
    }
}
