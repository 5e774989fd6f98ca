// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>Literal template text.</summary>
internal sealed class TextStmt(string text) : Stmt
{
    /// <summary>The text.</summary>
    public string Text { get; } = text;

    /// <inheritdoc/>
    public override Flow Execute(RenderState state, Scope scope)
    {
        state.Write(Text);
        return Flow.Normal;
    }
}
