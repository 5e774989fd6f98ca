// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary><c>{% call(params) macro(args) %}body{% endcall %}</c>: calls the macro with the body as <c>caller</c>.</summary>
internal sealed class CallBlockStmt(CallExpr call, string[] parameters, Expr?[] defaults, Stmt[] body) : Stmt
{
    /// <summary>The macro call.</summary>
    public CallExpr Call { get; } = call;

    /// <summary>The parameters of <c>caller</c>.</summary>
    public string[] Parameters { get; } = parameters;

    /// <summary>The defaults of <c>caller</c>'s parameters.</summary>
    public Expr?[] Defaults { get; } = defaults;

    /// <summary>The body that <c>caller()</c> renders.</summary>
    public Stmt[] Body { get; } = body;

    /// <inheritdoc/>
    public override Flow Execute(RenderState state, Scope scope)
    {
        object? callee = Call.Callee.Evaluate(state, scope);
        if (callee is not Macro macro)
        {
            throw ChatTemplateException.Runtime($"TypeError: {{% call %}} needs a macro, not '{PyFormat.TypeName(callee)}'");
        }

        var caller = new Macro("caller", Parameters, Defaults, Body, scope);
        state.Write(macro.Invoke(state, Call.Arguments.Evaluate(state, scope), caller));
        return Flow.Normal;
    }
}
