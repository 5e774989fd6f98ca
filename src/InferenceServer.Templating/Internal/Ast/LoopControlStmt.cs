// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary><c>{% break %}</c> or <c>{% continue %}</c> (Jinja's loopcontrols extension, which transformers enables).</summary>
internal sealed class LoopControlStmt(Flow flow) : Stmt
{
    /// <summary><see cref="Flow.Break"/> or <see cref="Flow.Continue"/>.</summary>
    public Flow Flow { get; } = flow;

    /// <inheritdoc/>
    public override Flow Execute(RenderState state, Scope scope) => Flow;
}
