// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>A filter: transforms <paramref name="value"/> given the arguments after it.</summary>
internal delegate object? FilterFunction(RenderState state, object? value, CallArgs args);
