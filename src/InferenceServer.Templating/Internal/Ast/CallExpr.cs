// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>A call <c>f(a, k=v)</c>; method calls on strings, dicts, lists and the loop dispatch without binding.</summary>
internal sealed class CallExpr(Expr callee, Arguments arguments) : Expr
{
    /// <summary>The called expression.</summary>
    public Expr Callee { get; } = callee;

    /// <summary>The arguments.</summary>
    public Arguments Arguments { get; } = arguments;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope)
    {
        object? callee;
        if (Callee is AttrExpr attr)
        {
            object? target = attr.Target.Evaluate(state, scope);
            if (target is string or PyList or PyDict && Methods.IsMethod(target, attr.Name))
            {
                return Methods.Call(state, target, attr.Name, Arguments.Evaluate(state, scope));
            }

            callee = PyOps.GetAttribute(target, attr.Name);
        }
        else
        {
            callee = Callee.Evaluate(state, scope);
        }

        return callee switch
        {
            ICallable callable => callable.Call(state, Arguments.Evaluate(state, scope)),
            Undefined undefined => throw undefined.Fail(),
            _ => throw ChatTemplateException.Runtime($"TypeError: '{PyFormat.TypeName(callee)}' object is not callable"),
        };
    }
}
