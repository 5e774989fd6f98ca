// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>
/// Llama 3.1 / 3.2 JSON calls: the output is <c>{"name": ..., "parameters": {...}}</c> (or <c>"arguments"</c>),
/// possibly after <c>&lt;|python_tag|&gt;</c>, several separated by <c>;</c>.
/// </summary>
/// <remarks>
/// vLLM's <c>llama3_json</c> streams a call only when the output starts with <c>{</c> or the tag, but its
/// non-streaming path takes a call object from anywhere in the text and drops the rest. Here both paths follow the
/// streaming rule, so that a reply that merely quotes JSON stays content: a call is an output whose first
/// non-blank character opens the object, or text followed by <c>&lt;|python_tag|&gt;</c> and the object (the text
/// before the tag is the content). Text after the last object is dropped, as vLLM does. Built-in tool calls
/// (<c>&lt;|python_tag|&gt;brave_search.call(...)</c>) are not JSON and stay content.
/// </remarks>
internal sealed class Llama3JsonToolCallParser : IToolCallParser
{
    /// <summary>The tag Llama writes before a tool call in ipython mode.</summary>
    public const string PythonTag = "<|python_tag|>";

    /// <summary>The shared instance.</summary>
    public static Llama3JsonToolCallParser Instance { get; } = new();

    /// <inheritdoc />
    public ToolCallFormat Format => ToolCallFormat.Llama3Json;

    /// <inheritdoc />
    public ToolCallParseResult Parse(string generatedText, IReadOnlySet<string>? functionNames = null)
    {
        var tag = generatedText.IndexOf(PythonTag, StringComparison.Ordinal);
        int contentEnd;
        int position;
        if (tag >= 0)
        {
            contentEnd = tag;
            position = tag + PythonTag.Length;
        }
        else
        {
            position = ToolCallText.SkipWhiteSpace(generatedText, 0);
            if (position == generatedText.Length || generatedText[position] != '{')
            {
                return ToolCallParseResult.ContentOnly(generatedText);
            }

            contentEnd = 0;
        }

        var calls = new List<ParsedToolCall>();
        while (true)
        {
            position = ToolCallText.SkipWhiteSpace(generatedText, position);
            var end = position < generatedText.Length && generatedText[position] == '{'
                ? ToolCallText.FindJsonValueEnd(generatedText, position)
                : -1;
            if (end < 0)
            {
                return ToolCallParseResult.ContentOnly(generatedText);
            }

            using var document = ToolCallText.TryParse(generatedText[position..end]);
            if (document is null || !ToolCallText.TryReadCall(document.RootElement, functionNames, Format, calls))
            {
                return ToolCallParseResult.ContentOnly(generatedText);
            }

            position = ToolCallText.SkipWhiteSpace(generatedText, end);
            if (position == generatedText.Length || generatedText[position] != ';')
            {
                break;
            }

            position = ToolCallText.SkipWhiteSpace(generatedText, position + 1);
            if (position == generatedText.Length || generatedText[position] != '{')
            {
                break;
            }
        }

        return new ToolCallParseResult(ToolCallText.ContentBefore(generatedText, contentEnd), calls);
    }

    /// <inheritdoc />
    public int SafeContentPrefixLength(ReadOnlySpan<char> textSoFar)
    {
        var first = ToolCallText.SkipWhiteSpace(textSoFar, 0);
        if (first == textSoFar.Length || textSoFar[first] == '{')
        {
            return 0;
        }

        var rest = textSoFar[first..];
        if (rest.Length < PythonTag.Length && PythonTag.AsSpan().StartsWith(rest))
        {
            return 0;
        }

        return ToolCallText.SafePrefixBeforeMarker(textSoFar, PythonTag);
    }
}
