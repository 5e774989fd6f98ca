// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>A global function implemented in C# (<c>range</c>, <c>namespace</c>, <c>raise_exception</c>...).</summary>
internal sealed class BuiltinFunction : ICallable
{
    private readonly Func<RenderState, CallArgs, object?> _body;

    /// <summary>Creates the function.</summary>
    public BuiltinFunction(string name, Func<RenderState, CallArgs, object?> body)
    {
        Name = name;
        _body = body;
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public object? Call(RenderState state, CallArgs args) => _body(state, args);
}
