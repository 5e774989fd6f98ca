// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary><c>{{ expr }}</c>: writes <c>str(value)</c> (undefined as empty).</summary>
internal sealed class OutputStmt(Expr value) : Stmt
{
    /// <summary>The printed expression.</summary>
    public Expr Value { get; } = value;

    /// <inheritdoc/>
    public override Flow Execute(RenderState state, Scope scope)
    {
        state.Write(PyFormat.Str(Value.Evaluate(state, scope)));
        return Flow.Normal;
    }
}
