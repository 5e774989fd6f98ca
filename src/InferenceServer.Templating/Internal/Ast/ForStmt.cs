// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary><c>{% for target in iterable if filter %}body{% else %}empty{% endfor %}</c>, with the <c>loop</c> variable.</summary>
internal sealed class ForStmt(AssignTarget target, Expr iterable, Expr? filter, Stmt[] body, Stmt[]? otherwise) : Stmt
{
    /// <summary>The loop variable(s).</summary>
    public AssignTarget Target { get; } = target;

    /// <summary>The iterated expression.</summary>
    public Expr Iterable { get; } = iterable;

    /// <summary>The <c>if</c> filter on items, or null.</summary>
    public Expr? Filter { get; } = filter;

    /// <summary>The body, run once per item in a fresh frame.</summary>
    public Stmt[] Body { get; } = body;

    /// <summary>The <c>else</c> body, run when no item was iterated, or null.</summary>
    public Stmt[]? Otherwise { get; } = otherwise;

    /// <inheritdoc/>
    public override Flow Execute(RenderState state, Scope scope)
    {
        List<object?> items = PyOps.Iterate(Iterable.Evaluate(state, scope));
        if (Filter is not null)
        {
            var kept = new List<object?>(items.Count);
            foreach (object? item in items)
            {
                state.CountIteration();
                var probe = new Scope(scope);
                Target.Assign(probe, item);
                if (PyOps.IsTruthy(Filter.Evaluate(state, probe)))
                {
                    kept.Add(item);
                }
            }

            items = kept;
        }
        else if (items.Count > 0)
        {
            // Iterate a snapshot so that the body cannot change what it iterates.
            items = [.. items];
        }

        if (items.Count == 0)
        {
            // The else body has its own frame too (Jinja2's else_frame): its assignments do not leak.
            return Otherwise is null ? Flow.Normal : ExecuteBody(Otherwise, state, new Scope(scope));
        }

        var loop = new LoopContext(items, 0);
        for (int i = 0; i < items.Count; i++)
        {
            state.CountIteration();
            loop.Index0 = i;
            var frame = new Scope(scope);
            frame.Set("loop", loop);
            Target.Assign(frame, items[i]);
            if (ExecuteBody(Body, state, frame) == Flow.Break)
            {
                break;
            }
        }

        return Flow.Normal;
    }
}
