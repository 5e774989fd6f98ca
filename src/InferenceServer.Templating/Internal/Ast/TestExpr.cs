// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>A test <c>value is name(args)</c> or <c>value is not name</c>; resolved when the template is parsed.</summary>
internal sealed class TestExpr(Expr operand, string name, TestFunction function, Arguments arguments, bool negated) : Expr
{
    /// <summary>The tested expression.</summary>
    public Expr Operand { get; } = operand;

    /// <summary>The test name.</summary>
    public string Name { get; } = name;

    /// <summary>The test implementation.</summary>
    public TestFunction Function { get; } = function;

    /// <summary>The arguments after the value.</summary>
    public Arguments Arguments { get; } = arguments;

    /// <summary>Whether the test was written <c>is not</c>.</summary>
    public bool Negated { get; } = negated;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope)
        => Function(state, Operand.Evaluate(state, scope), Arguments.Evaluate(state, scope)) != Negated;
}
