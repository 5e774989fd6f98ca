// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>Slice <c>obj[start:stop:step]</c>; each bound may be absent.</summary>
internal sealed class SliceExpr(Expr target, Expr? start, Expr? stop, Expr? step) : Expr
{
    /// <summary>The sliced expression.</summary>
    public Expr Target { get; } = target;

    /// <summary>The start bound, or null.</summary>
    public Expr? Start { get; } = start;

    /// <summary>The stop bound, or null.</summary>
    public Expr? Stop { get; } = stop;

    /// <summary>The step, or null.</summary>
    public Expr? Step { get; } = step;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope)
        => PyOps.Slice(Target.Evaluate(state, scope), Start?.Evaluate(state, scope), Stop?.Evaluate(state, scope), Step?.Evaluate(state, scope));
}
