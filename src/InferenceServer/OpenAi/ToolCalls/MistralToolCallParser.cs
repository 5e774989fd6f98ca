// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;

namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>
/// Mistral calls after the <c>[TOOL_CALLS]</c> control token. The v0.3 (pre-v11 tokenizer) form is a JSON array,
/// <c>[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]</c> (a single object is accepted too); the v11 form is
/// <c>[TOOL_CALLS]name{...}</c> or <c>[TOOL_CALLS]name[ARGS]{...}</c>, the marker repeated per call. Content is the
/// text before the first marker; text after the calls is dropped; anything that fails to parse leaves the whole text
/// as content (vLLM strips the marker there; keeping the text unchanged keeps the streaming contract simple).
/// Ids are 9 alphanumerics, which Mistral's templates and mistral-common require.
/// </summary>
internal sealed class MistralToolCallParser : IToolCallParser
{
    /// <summary>The control token that opens the calls.</summary>
    public const string Marker = "[TOOL_CALLS]";

    /// <summary>The v11 control token between a function name and its arguments.</summary>
    public const string ArgsMarker = "[ARGS]";

    /// <summary>The shared instance.</summary>
    public static MistralToolCallParser Instance { get; } = new();

    /// <inheritdoc />
    public ToolCallFormat Format => ToolCallFormat.Mistral;

    /// <inheritdoc />
    public ToolCallParseResult Parse(string generatedText, IReadOnlySet<string>? functionNames = null)
    {
        var first = generatedText.IndexOf(Marker, StringComparison.Ordinal);
        if (first < 0)
        {
            return ToolCallParseResult.ContentOnly(generatedText);
        }

        var calls = new List<ParsedToolCall>();
        var segmentStart = first + Marker.Length;
        while (true)
        {
            var next = generatedText.IndexOf(Marker, segmentStart, StringComparison.Ordinal);
            var segmentEnd = next < 0 ? generatedText.Length : next;
            if (!TryParseSegment(generatedText, segmentStart, segmentEnd, functionNames, calls))
            {
                return ToolCallParseResult.ContentOnly(generatedText);
            }

            if (next < 0)
            {
                break;
            }

            segmentStart = next + Marker.Length;
        }

        return calls.Count == 0
            ? ToolCallParseResult.ContentOnly(generatedText)
            : new ToolCallParseResult(ToolCallText.ContentBefore(generatedText, first), calls);
    }

    /// <inheritdoc />
    public int SafeContentPrefixLength(ReadOnlySpan<char> textSoFar) => ToolCallText.SafePrefixBeforeMarker(textSoFar, Marker);

    /// <summary>Reads the calls of one marker's segment, <c>text[start..end]</c>; an empty segment holds none.</summary>
    private bool TryParseSegment(string text, int start, int end, IReadOnlySet<string>? functionNames, List<ParsedToolCall> calls)
    {
        var segment = text[start..end];
        var position = ToolCallText.SkipWhiteSpace(segment, 0);
        if (position == segment.Length)
        {
            return true;
        }

        if (segment[position] is '[' or '{')
        {
            var valueEnd = ToolCallText.FindJsonValueEnd(segment, position);
            using var document = valueEnd < 0 ? null : ToolCallText.TryParse(segment[position..valueEnd]);
            if (document is null)
            {
                return false;
            }

            var root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Object)
            {
                return ToolCallText.TryReadCall(root, functionNames, Format, calls);
            }

            if (root.GetArrayLength() == 0)
            {
                return false;
            }

            foreach (var item in root.EnumerateArray())
            {
                if (!ToolCallText.TryReadCall(item, functionNames, Format, calls))
                {
                    return false;
                }
            }

            return true;
        }

        // v11: one or more `name{...}` / `name[ARGS]{...}`.
        while (position < segment.Length)
        {
            var nameStart = position;
            while (position < segment.Length && (char.IsAsciiLetterOrDigit(segment[position]) || segment[position] is '_' or '-'))
            {
                position++;
            }

            var name = segment[nameStart..position];
            if (segment.AsSpan(position).StartsWith(ArgsMarker, StringComparison.Ordinal))
            {
                position += ArgsMarker.Length;
            }

            position = ToolCallText.SkipWhiteSpace(segment, position);
            var valueEnd = position < segment.Length && segment[position] == '{' ? ToolCallText.FindJsonValueEnd(segment, position) : -1;
            using var document = valueEnd < 0 ? null : ToolCallText.TryParse(segment[position..valueEnd]);
            if (document is null || !ToolCallText.TryAddCall(name, document.RootElement, functionNames, Format, calls))
            {
                return false;
            }

            position = ToolCallText.SkipWhiteSpace(segment, valueEnd);
            if (position < segment.Length && segment[position] == ',')
            {
                position = ToolCallText.SkipWhiteSpace(segment, position + 1);
            }
        }

        return true;
    }
}
