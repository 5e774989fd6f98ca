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
        // The body runs in its own frame: assignments inside a block set do not leak out (Jinja2's block frame).
        object? value = Capture(Body, state, new Scope(scope));
        foreach (FilterExpr filter in Filters)
        {
            value = filter.Apply(state, scope, value);
        }

        Target.Assign(scope, value);
        return Flow.Normal;
    }
}
