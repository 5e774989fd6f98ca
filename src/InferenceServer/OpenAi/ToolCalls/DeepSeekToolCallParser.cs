// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>
/// DeepSeek V3 / R1 calls, as the DeepSeek template renders them:
/// <c>&lt;｜tool▁calls▁begin｜&gt;&lt;｜tool▁call▁begin｜&gt;function&lt;｜tool▁sep｜&gt;NAME\n```json\n{...}\n```&lt;｜tool▁call▁end｜&gt;</c>
/// (more calls separated by <c>\n</c>) <c>&lt;｜tool▁calls▁end｜&gt;</c>. The V3.1 form,
/// <c>&lt;｜tool▁call▁begin｜&gt;NAME&lt;｜tool▁sep｜&gt;{...}&lt;｜tool▁call▁end｜&gt;</c>, is read too.
/// </summary>
/// <remarks>
/// As vLLM's <c>deepseek_v3</c>: content is the text before <c>&lt;｜tool▁calls▁begin｜&gt;</c>; each call needs its end
/// marker (the closing <c>&lt;｜tool▁calls▁end｜&gt;</c> may be missing). Unlike vLLM, which passes the text between the
/// fences through unchecked, the arguments must be valid JSON (written compactly), else the whole text is content.
/// DeepSeek-R1 reasoning (<c>&lt;think&gt;...&lt;/think&gt;</c>) is not split off: it stays in the content (vLLM does that
/// with a separate reasoning parser).
/// </remarks>
internal sealed class DeepSeekToolCallParser : IToolCallParser
{
    /// <summary>Opens the calls.</summary>
    public const string CallsBegin = "<｜tool▁calls▁begin｜>";

    /// <summary>Opens one call.</summary>
    public const string CallBegin = "<｜tool▁call▁begin｜>";

    /// <summary>Closes one call.</summary>
    public const string CallEnd = "<｜tool▁call▁end｜>";

    /// <summary>Separates the type (V3) or the name (V3.1) from the rest.</summary>
    public const string Separator = "<｜tool▁sep｜>";

    private const string JsonFence = "```json";
    private const string Fence = "```";

    /// <summary>The shared instance.</summary>
    public static DeepSeekToolCallParser Instance { get; } = new();

    /// <inheritdoc />
    public ToolCallFormat Format => ToolCallFormat.DeepSeek;

    /// <inheritdoc />
    public ToolCallParseResult Parse(string generatedText, IReadOnlySet<string>? functionNames = null)
    {
        var first = generatedText.IndexOf(CallsBegin, StringComparison.Ordinal);
        if (first < 0)
        {
            return ToolCallParseResult.ContentOnly(generatedText);
        }

        var calls = new List<ParsedToolCall>();
        var position = first + CallsBegin.Length;
        while (true)
        {
            var begin = generatedText.IndexOf(CallBegin, position, StringComparison.Ordinal);
            if (begin < 0)
            {
                break;
            }

            var bodyStart = begin + CallBegin.Length;
            var end = generatedText.IndexOf(CallEnd, bodyStart, StringComparison.Ordinal);
            if (end < 0 || !TryParseCall(generatedText[bodyStart..end], functionNames, calls))
            {
                return ToolCallParseResult.ContentOnly(generatedText);
            }

            position = end + CallEnd.Length;
        }

        return calls.Count == 0
            ? ToolCallParseResult.ContentOnly(generatedText)
            : new ToolCallParseResult(ToolCallText.ContentBefore(generatedText, first), calls);
    }

    /// <inheritdoc />
    public int SafeContentPrefixLength(ReadOnlySpan<char> textSoFar) => ToolCallText.SafePrefixBeforeMarker(textSoFar, CallsBegin);

    /// <summary>Reads one call body: <c>function&lt;sep&gt;NAME\n```json\nARGS\n```</c> or <c>NAME&lt;sep&gt;ARGS</c>.</summary>
    private bool TryParseCall(string body, IReadOnlySet<string>? functionNames, List<ParsedToolCall> calls)
    {
        var separator = body.IndexOf(Separator, StringComparison.Ordinal);
        if (separator < 0)
        {
            return false;
        }

        var before = body[..separator].Trim();
        var after = body[(separator + Separator.Length)..];
        string name;
        string arguments;
        var newline = after.IndexOf('\n', StringComparison.Ordinal);
        if (before == "function" && newline >= 0)
        {
            name = after[..newline].Trim();
            arguments = StripFences(after[(newline + 1)..].Trim());
        }
        else
        {
            name = before;
            arguments = StripFences(after.Trim());
        }

        using var document = ToolCallText.TryParse(arguments);
        return document is not null && ToolCallText.TryAddCall(name, document.RootElement, functionNames, Format, calls);
    }

    /// <summary>Removes a surrounding <c>```json ... ```</c> fence, if any.</summary>
    private static string StripFences(string text)
    {
        if (text.StartsWith(JsonFence, StringComparison.Ordinal))
        {
            text = text[JsonFence.Length..];
        }
        else if (text.StartsWith(Fence, StringComparison.Ordinal))
        {
            text = text[Fence.Length..];
        }

        if (text.EndsWith(Fence, StringComparison.Ordinal))
        {
            text = text[..^Fence.Length];
        }

        return text.Trim();
    }
}
