// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary><c>{% macro name(a, b=1) %}body{% endmacro %}</c>: defines the macro in the current frame.</summary>
internal sealed class MacroStmt(string name, string[] parameters, Expr?[] defaults, Stmt[] body) : Stmt
{
    /// <summary>The macro name.</summary>
    public string Name { get; } = name;

    /// <summary>The parameter names.</summary>
    public string[] Parameters { get; } = parameters;

    /// <summary>The default expressions, parallel to <see cref="Parameters"/> (null where there is none).</summary>
    public Expr?[] Defaults { get; } = defaults;

    /// <summary>The body.</summary>
    public Stmt[] Body { get; } = body;

    /// <inheritdoc/>
    public override Flow Execute(RenderState state, Scope scope)
    {
        scope.Set(Name, new Macro(Name, Parameters, Defaults, Body, scope));
        return Flow.Normal;
    }
}
