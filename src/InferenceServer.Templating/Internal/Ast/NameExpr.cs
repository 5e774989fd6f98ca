// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>A variable reference; a missing variable is undefined.</summary>
internal sealed class NameExpr(string name) : Expr
{
    /// <summary>The variable name.</summary>
    public string Name { get; } = name;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope)
        => scope.TryLookup(Name, out object? value) ? value : Undefined.ForName(Name);
}
