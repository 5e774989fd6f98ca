// Licensed under the MIT License. See LICENSE in the repository root.

using InferenceServer.Templating.Internal.Ast;

namespace InferenceServer.Templating.Internal;

/// <summary>
/// A macro defined with <c>{% macro %}</c> (or the body of a <c>{% call %}</c> block, as <c>caller</c>). Calling it
/// renders the body in a fresh frame over the defining one and returns the text. Extra positional arguments go to
/// <c>varargs</c>, unknown keywords to <c>kwargs</c>; missing parameters without defaults are undefined.
/// </summary>
internal sealed class Macro : ICallable
{
    private readonly string[] _parameters;
    private readonly Expr?[] _defaults;
    private readonly Stmt[] _body;
    private readonly Scope _scope;

    /// <summary>Creates the macro, closing over <paramref name="scope"/>.</summary>
    public Macro(string name, string[] parameters, Expr?[] defaults, Stmt[] body, Scope scope)
    {
        Name = name;
        _parameters = parameters;
        _defaults = defaults;
        _body = body;
        _scope = scope;
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public object? Call(RenderState state, CallArgs args) => Invoke(state, args, caller: null);

    /// <summary>Calls the macro with <paramref name="caller"/> bound (from a <c>{% call %}</c> block).</summary>
    public string Invoke(RenderState state, CallArgs args, Macro? caller)
    {
        if (state.CallDepth >= state.Options.MaxCallDepth)
        {
            throw ChatTemplateException.Limit($"macro calls nested deeper than {state.Options.MaxCallDepth}");
        }

        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        var frame = new Scope(_scope);
        var varargs = new List<object?>();
        for (int i = 0; i < args.Count; i++)
        {
            if (i < _parameters.Length)
            {
                frame.Set(_parameters[i], args.Positional[i]);
            }
            else
            {
                varargs.Add(args.Positional[i]);
            }
        }

        var kwargs = new PyDict();
        for (int i = 0; i < args.Names.Length; i++)
        {
            int index = Array.IndexOf(_parameters, args.Names[i]);
            if (args.Names[i] == "caller" && caller is null && args.NamedValues[i] is Macro given)
            {
                caller = given;
            }
            else if (index < 0)
            {
                kwargs.Set(args.Names[i], args.NamedValues[i]);
            }
            else if (index < args.Count)
            {
                throw ChatTemplateException.Runtime($"TypeError: macro '{Name}' got multiple values for argument '{args.Names[i]}'");
            }
            else
            {
                frame.Set(args.Names[i], args.NamedValues[i]);
            }
        }

        state.CallDepth++;
        try
        {
            for (int i = 0; i < _parameters.Length; i++)
            {
                if (!frame.TryLookupLocal(_parameters[i]))
                {
                    frame.Set(_parameters[i], _defaults[i] is { } d ? d.Evaluate(state, frame) : Undefined.ForName(_parameters[i]));
                }
            }

            frame.Set("varargs", new PyList(varargs, isTuple: true));
            frame.Set("kwargs", kwargs);
            if (caller is not null)
            {
                frame.Set("caller", caller);
            }

            return Stmt.Capture(_body, state, frame);
        }
        finally
        {
            state.CallDepth--;
        }
    }
}
