// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>A filter application <c>value | name(args)</c>; the filter is resolved when the template is parsed.</summary>
internal sealed class FilterExpr(Expr? operand, string name, FilterFunction function, Arguments arguments) : Expr
{
    /// <summary>The filtered expression (null inside a <c>{% filter %}</c> block, where the block's output is the value).</summary>
    public Expr? Operand { get; } = operand;

    /// <summary>The filter name.</summary>
    public string Name { get; } = name;

    /// <summary>The filter implementation.</summary>
    public FilterFunction Function { get; } = function;

    /// <summary>The arguments after the value.</summary>
    public Arguments Arguments { get; } = arguments;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope)
        => Apply(state, scope, Operand!.Evaluate(state, scope));

    /// <summary>Applies the filter to <paramref name="value"/>.</summary>
    public object? Apply(RenderState state, Scope scope, object? value)
        => Function(state, value, Arguments.Evaluate(state, scope));
}
