// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;

namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>One validated entry of the request's <c>tools</c>: <c>{"type": "function", "function": {...}}</c>.</summary>
/// <param name="Name">The function name, matching <c>^[a-zA-Z0-9_-]{1,64}$</c>.</param>
/// <param name="Description">The description, if given.</param>
/// <param name="Parameters">The JSON Schema of the arguments (an object), if given; cloned, so it outlives the request document.</param>
internal sealed record FunctionTool(string Name, string? Description, JsonElement? Parameters);
