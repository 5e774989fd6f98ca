// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>A method of a string, list, dict or loop, looked up but not yet called (e.g. <c>{% set f = s.strip %}</c>).</summary>
internal sealed class BoundMethod : ICallable
{
    /// <summary>Binds <paramref name="name"/> to <paramref name="target"/>.</summary>
    public BoundMethod(object target, string name)
    {
        Target = target;
        Name = name;
    }

    /// <summary>The object the method belongs to.</summary>
    public object Target { get; }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public object? Call(RenderState state, CallArgs args) => Methods.Call(state, Target, Name, args);
}
