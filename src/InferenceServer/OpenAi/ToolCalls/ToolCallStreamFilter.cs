// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>
/// Per-request streaming helper over an <see cref="IToolCallParser"/>: releases content as soon as it is certainly
/// not part of a tool call, and at the end hands over the rest of the content and the calls. One per choice; not
/// thread-safe (the choice's stream owns it).
/// </summary>
/// <example>
/// <code>
/// var filter = new ToolCallStreamFilter(parser, tools.Names);
/// // each token: text grew to textSoFar
/// var delta = filter.NextContent(textSoFar);          // send as a content delta when not empty
/// // end of generation:
/// var result = filter.Complete(fullText, out var rest); // send rest (if any) as content, then result.ToolCalls
/// </code>
/// </example>
internal sealed class ToolCallStreamFilter
{
    private readonly IToolCallParser _parser;
    private readonly IReadOnlySet<string>? _functionNames;
    private int _released;

    /// <summary>Creates the filter for one choice's stream.</summary>
    /// <param name="parser">The model's parser.</param>
    /// <param name="functionNames">The declared function names, passed on to <see cref="IToolCallParser.Parse"/>.</param>
    public ToolCallStreamFilter(IToolCallParser parser, IReadOnlySet<string>? functionNames)
    {
        ArgumentNullException.ThrowIfNull(parser);
        _parser = parser;
        _functionNames = functionNames;
    }

    /// <summary>How many characters have been released as content.</summary>
    public int Released => _released;

    /// <summary>
    /// The content that became safe to send since the last call: a slice of <paramref name="textSoFar"/>, empty
    /// when nothing new is safe. <paramref name="textSoFar"/> is all text generated so far; it only grows.
    /// </summary>
    public ReadOnlySpan<char> NextContent(ReadOnlySpan<char> textSoFar)
    {
        var safe = _parser.SafeContentPrefixLength(textSoFar);
        if (safe <= _released)
        {
            return [];
        }

        var delta = textSoFar[_released..safe];
        _released = safe;
        return delta;
    }

    /// <summary>
    /// Parses the complete text. <paramref name="contentRemainder"/> is the part of the result's content not yet
    /// released (null when none); the result's tool calls follow it.
    /// </summary>
    public ToolCallParseResult Complete(string generatedText, out string? contentRemainder)
    {
        var result = _parser.Parse(generatedText, _functionNames);
        var content = result.Content ?? string.Empty;
        if (content.Length < _released || !content.AsSpan(0, _released).SequenceEqual(generatedText.AsSpan(0, _released)))
        {
            throw new InvalidOperationException("The parser released content that its final parse does not start with.");
        }

        contentRemainder = content.Length > _released ? content[_released..] : null;
        return result;
    }
}
