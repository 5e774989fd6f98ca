// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>A literal: string, number, boolean or none.</summary>
internal sealed class ConstExpr(object? value) : Expr
{
    /// <summary>The literal's value.</summary>
    public object? Value { get; } = value;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope) => Value;
}
