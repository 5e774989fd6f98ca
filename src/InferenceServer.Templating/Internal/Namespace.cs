// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>The object <c>namespace(...)</c> returns: attributes that <c>{% set ns.attr = ... %}</c> can assign from inside loops.</summary>
internal sealed class Namespace
{
    /// <summary>The attributes, in the order they were first set.</summary>
    public PyDict Attributes { get; } = new();
}
