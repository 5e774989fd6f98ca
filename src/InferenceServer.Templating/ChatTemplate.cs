// Licensed under the MIT License. See LICENSE in the repository root.

using InferenceServer.Templating.Internal;
using InferenceServer.Templating.Internal.Ast;

namespace InferenceServer.Templating;

/// <summary>
/// A compiled Jinja chat template: parsed once into an AST, rendered many times (concurrently, since rendering keeps
/// its state per call). Renders as transformers' Jinja2 environment does: <c>trim_blocks</c> and
/// <c>lstrip_blocks</c> on, loop controls, <c>raise_exception</c>, <c>strftime_now</c>, transformers' <c>tojson</c>,
/// and the immutable sandbox's refusal of mutating methods.
/// </summary>
public sealed class ChatTemplate
{
    private readonly Stmt[] _body;

    private ChatTemplate(string source, Stmt[] body)
    {
        Source = source;
        _body = body;
    }

    /// <summary>The template text.</summary>
    public string Source { get; }

    /// <summary>Parses <paramref name="source"/>.</summary>
    /// <param name="source">The Jinja template text.</param>
    /// <returns>The compiled template.</returns>
    /// <exception cref="ChatTemplateException">The template has a syntax error (the message names the line) or uses an unsupported construct.</exception>
    public static ChatTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        try
        {
            return new ChatTemplate(source, Parser.Parse(source));
        }
        catch (Exception ex) when (ex is not ChatTemplateException and not OutOfMemoryException)
        {
            throw new ChatTemplateException($"the template could not be parsed: {ex.Message}", ChatTemplateErrorKind.Syntax, null, ex);
        }
    }

    /// <summary>Renders the template with the variables of <paramref name="context"/>.</summary>
    /// <param name="context">The variables and the limits.</param>
    /// <returns>The rendered text.</returns>
    /// <exception cref="ChatTemplateException">The template raised (<c>raise_exception</c>), an operation failed as it
    /// would in Jinja2, or a limit was exceeded; <see cref="ChatTemplateException.Kind"/> says which.</exception>
    internal string Render(ChatTemplateContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var state = new RenderState(context.Options);
        var scope = new Scope(null);
        context.CopyTo(scope);
        try
        {
            Stmt.ExecuteBody(_body, state, scope);
        }
        catch (InsufficientExecutionStackException ex)
        {
            throw new ChatTemplateException("the template recursed too deeply", ChatTemplateErrorKind.LimitExceeded, null, ex);
        }
        catch (Exception ex) when (ex is not ChatTemplateException and not OutOfMemoryException)
        {
            // A defect of this engine, not of the template; still reported as a template error so callers have one type to handle.
            throw new ChatTemplateException($"internal error while rendering: {ex.GetType().Name}: {ex.Message}", ChatTemplateErrorKind.Runtime, null, ex);
        }

        return state.Output.ToString();
    }
}
