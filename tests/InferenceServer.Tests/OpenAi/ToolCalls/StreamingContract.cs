using InferenceServer.OpenAi.ToolCalls;

namespace InferenceServer.Tests.OpenAi.ToolCalls;

/// <summary>Checks <see cref="IToolCallParser"/>'s streaming contract over every prefix of a generated text.</summary>
internal static class StreamingContract
{
    /// <summary>
    /// Streams <paramref name="text"/> one character at a time: the safe prefix never shrinks, never passes the text,
    /// and everything it released is the start of the final content. Returns the final parse.
    /// </summary>
    public static ToolCallParseResult AssertHolds(IToolCallParser parser, string text, IReadOnlySet<string>? names = null)
    {
        var final = parser.Parse(text, names);
        var released = 0;
        for (var length = 0; length <= text.Length; length++)
        {
            var safe = parser.SafeContentPrefixLength(text.AsSpan(0, length));
            Assert.InRange(safe, released, length);
            released = safe;
        }

        if (released > 0)
        {
            Assert.NotNull(final.Content);
            Assert.StartsWith(text[..released], final.Content, StringComparison.Ordinal);
        }

        return final;
    }
}
