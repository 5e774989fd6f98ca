// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>The argument expressions of a call, filter or test: positional, then keyword.</summary>
internal sealed class Arguments(Expr[] positional, string[] names, Expr[] named)
{
    /// <summary>No arguments.</summary>
    public static readonly Arguments None = new([], [], []);

    /// <summary>The positional argument expressions.</summary>
    public Expr[] Positional { get; } = positional;

    /// <summary>The keyword names.</summary>
    public string[] Names { get; } = names;

    /// <summary>The keyword value expressions.</summary>
    public Expr[] Named { get; } = named;

    /// <summary>Evaluates the arguments.</summary>
    public CallArgs Evaluate(RenderState state, Scope scope)
    {
        if (Positional.Length == 0 && Names.Length == 0)
        {
            return CallArgs.Empty;
        }

        var positional = new object?[Positional.Length];
        for (int i = 0; i < positional.Length; i++)
        {
            positional[i] = Positional[i].Evaluate(state, scope);
        }

        if (Names.Length == 0)
        {
            return new CallArgs(positional);
        }

        var named = new object?[Named.Length];
        for (int i = 0; i < named.Length; i++)
        {
            named[i] = Named[i].Evaluate(state, scope);
        }

        return new CallArgs(positional, Names, named);
    }
}
