// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>A statement node of the template AST: text, output, control flow or assignment.</summary>
internal abstract class Stmt
{
    /// <summary>The 1-based line the statement starts on.</summary>
    public int Line { get; init; }

    /// <summary>Runs the statement, writing to <see cref="RenderState.Output"/>.</summary>
    public abstract Flow Execute(RenderState state, Scope scope);

    /// <summary>Runs <paramref name="body"/> in order; stops at <c>break</c>/<c>continue</c>; errors get their line.</summary>
    public static Flow ExecuteBody(Stmt[] body, RenderState state, Scope scope)
    {
        int i = 0;
        try
        {
            for (; i < body.Length; i++)
            {
                Flow flow = body[i].Execute(state, scope);
                if (flow != Flow.Normal)
                {
                    return flow;
                }
            }
        }
        catch (ChatTemplateException ex) when (ex.Line is null && ex.Kind != ChatTemplateErrorKind.RaisedByTemplate)
        {
            throw ex.WithLine(body[i].Line);
        }

        return Flow.Normal;
    }

    /// <summary>Runs <paramref name="body"/> into a fresh buffer and returns what it wrote.</summary>
    public static string Capture(Stmt[] body, RenderState state, Scope scope)
    {
        System.Text.StringBuilder saved = state.Output;
        state.Output = new System.Text.StringBuilder();
        try
        {
            ExecuteBody(body, state, scope);
            return state.Output.ToString();
        }
        finally
        {
            state.Output = saved;
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/> in its own frame under <paramref name="scope"/> (assignments inside do not leak out:
    /// Jinja2's block frame) and passes what it wrote through <paramref name="filters"/>, in order: the value of a block
    /// <c>set</c> and of a <c>filter</c> block.
    /// </summary>
    public static object? CaptureFiltered(Stmt[] body, FilterExpr[] filters, RenderState state, Scope scope)
    {
        object? value = Capture(body, state, new Scope(scope));
        foreach (FilterExpr filter in filters)
        {
            value = filter.Apply(state, scope, value);
        }

        return value;
    }
}
