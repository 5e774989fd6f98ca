// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary><c>{% filter name %}body{% endfilter %}</c>: writes the body's output passed through the filters.</summary>
internal sealed class FilterBlockStmt(Stmt[] body, FilterExpr[] filters) : Stmt
{
    /// <summary>The captured body.</summary>
    public Stmt[] Body { get; } = body;

    /// <summary>The filters, in order.</summary>
    public FilterExpr[] Filters { get; } = filters;

    /// <inheritdoc/>
    public override Flow Execute(RenderState state, Scope scope)
    {
        state.Write(PyFormat.Str(CaptureFiltered(Body, Filters, state, scope)));
        return Flow.Normal;
    }
}
