// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>An expression node of the template AST; evaluating it yields a template value.</summary>
internal abstract class Expr
{
    /// <summary>The 1-based line the expression starts on.</summary>
    public int Line { get; init; }

    /// <summary>Evaluates the expression in <paramref name="scope"/>.</summary>
    public abstract object? Evaluate(RenderState state, Scope scope);
}
