// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>A test (<c>value is name(args)</c>): a predicate on <paramref name="value"/>.</summary>
internal delegate bool TestFunction(RenderState state, object? value, CallArgs args);
