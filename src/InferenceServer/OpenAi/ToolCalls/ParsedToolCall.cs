// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>
/// One tool call found in generated text, in the shape of OpenAI's <c>message.tool_calls[i]</c>
/// (<c>{"id", "type": "function", "function": {"name", "arguments"}}</c>).
/// </summary>
/// <param name="Id">The call id: <c>call_</c> and 24 alphanumerics, or 9 alphanumerics for Mistral (see <see cref="ToolCallIds"/>).</param>
/// <param name="Name">The function name, as the model wrote it.</param>
/// <param name="ArgumentsJson">OpenAI's <c>function.arguments</c>: the arguments as a JSON string, written compactly
/// (or the model's own string when it wrote the arguments as a JSON string).</param>
internal sealed record ParsedToolCall(string Id, string Name, string ArgumentsJson);
