// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>
/// Qwen 2.5 / Hermes calls: <c>&lt;tool_call&gt;\n{"name": ..., "arguments": {...}}\n&lt;/tool_call&gt;</c>, one block per call.
/// As vLLM's <c>hermes</c> parser: the content is the text before the first block, text between and after blocks is
/// dropped, the last block may lack its closing tag (generation stopped there), and if any block fails to parse the
/// whole text is content.
/// </summary>
internal sealed class HermesToolCallParser : IToolCallParser
{
    /// <summary>Opens a call.</summary>
    public const string StartTag = "<tool_call>";

    /// <summary>Closes a call.</summary>
    public const string EndTag = "</tool_call>";

    /// <summary>The shared instance.</summary>
    public static HermesToolCallParser Instance { get; } = new();

    /// <inheritdoc />
    public ToolCallFormat Format => ToolCallFormat.Hermes;

    /// <inheritdoc />
    public ToolCallParseResult Parse(string generatedText, IReadOnlySet<string>? functionNames = null)
    {
        var first = generatedText.IndexOf(StartTag, StringComparison.Ordinal);
        if (first < 0)
        {
            return ToolCallParseResult.ContentOnly(generatedText);
        }

        var calls = new List<ParsedToolCall>();
        var start = first;
        while (start >= 0)
        {
            var bodyStart = start + StartTag.Length;
            var end = generatedText.IndexOf(EndTag, bodyStart, StringComparison.Ordinal);
            var body = end < 0 ? generatedText[bodyStart..] : generatedText[bodyStart..end];
            using var document = ToolCallText.TryParse(body);
            if (document is null || !ToolCallText.TryReadCall(document.RootElement, functionNames, Format, calls))
            {
                return ToolCallParseResult.ContentOnly(generatedText);
            }

            start = end < 0 ? -1 : generatedText.IndexOf(StartTag, end + EndTag.Length, StringComparison.Ordinal);
        }

        return new ToolCallParseResult(ToolCallText.ContentBefore(generatedText, first), calls);
    }

    /// <inheritdoc />
    public int SafeContentPrefixLength(ReadOnlySpan<char> textSoFar) => ToolCallText.SafePrefixBeforeMarker(textSoFar, StartTag);
}
