// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>What a chat template does with tools, read from its source by <see cref="ToolCallParsers.Describe"/>.</summary>
/// <param name="Format">The tool-call format the model is trained to emit; <see cref="ToolCallFormat.None"/> when the
/// template neither renders tools nor tool calls.</param>
/// <param name="RendersToolDefinitions">Whether the template reads the <c>tools</c> variable, i.e. shows the model
/// the request's function definitions. False for DeepSeek-R1's published template, which renders past tool calls
/// and results but never the definitions.</param>
internal readonly record struct ToolTemplateSupport(ToolCallFormat Format, bool RendersToolDefinitions)
{
    /// <summary>Whether a request with <c>tools</c> (and <c>tool_choice</c> other than <c>none</c>) can be served
    /// as the model was trained: the template shows the tools and the output format is known.</summary>
    public bool SupportsTools => Format != ToolCallFormat.None && RendersToolDefinitions;
}
