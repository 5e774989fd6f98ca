// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>What generated text holds: the message content and the tool calls.</summary>
internal sealed class ToolCallParseResult
{
    private static readonly ParsedToolCall[] NoCalls = [];

    /// <summary>Creates a result.</summary>
    public ToolCallParseResult(string? content, IReadOnlyList<ParsedToolCall> toolCalls)
    {
        Content = content;
        ToolCalls = toolCalls;
    }

    /// <summary>
    /// OpenAI's <c>message.content</c>. Without tool calls: the generated text, unchanged. With tool calls: the text
    /// before the first call with trailing white space removed (the template's separator), or null when that is empty.
    /// </summary>
    public string? Content { get; }

    /// <summary>The calls in the order generated; empty when the text holds none (then <c>finish_reason</c> is not
    /// <c>tool_calls</c>).</summary>
    public IReadOnlyList<ParsedToolCall> ToolCalls { get; }

    /// <summary>Whether any tool call was found.</summary>
    public bool HasToolCalls => ToolCalls.Count > 0;

    /// <summary>A result that is all content: no tool call, or tool-call text that did not parse.</summary>
    public static ToolCallParseResult ContentOnly(string text) => new(text, NoCalls);
}
