// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>A value a template can call: a global function, a bound method, a macro.</summary>
internal interface ICallable
{
    /// <summary>The name used in error messages.</summary>
    string Name { get; }

    /// <summary>Calls the value.</summary>
    object? Call(RenderState state, CallArgs args);
}
