using System.Text;
using InferenceServer.OpenAi.ToolCalls;

namespace InferenceServer.Tests.OpenAi.ToolCalls;

public sealed class ToolCallStreamFilterTests
{
    private static readonly HashSet<string> Names = ["get_weather"];

    /// <summary>Streams <paramref name="tokens"/> through a filter; returns what was sent as content and the result.</summary>
    private static (string Streamed, string? Remainder, ToolCallParseResult Result) Stream(IToolCallParser parser, params string[] tokens)
    {
        var filter = new ToolCallStreamFilter(parser, Names);
        var text = new StringBuilder();
        var streamed = new StringBuilder();
        foreach (var token in tokens)
        {
            text.Append(token);
            streamed.Append(filter.NextContent(text.ToString()));
        }

        var result = filter.Complete(text.ToString(), out var rest);
        return (streamed.ToString(), rest, result);
    }

    [Fact]
    public void ContentThenCall_StreamsTheContentAndHoldsTheCall()
    {
        var (streamed, rest, result) = Stream(HermesToolCallParser.Instance,
            "Let", " me", " check", ".\n", "<tool", "_call", ">\n{\"name\": \"get_weather\", ", "\"arguments\": {\"city\": \"Paris\"}}\n", "</tool_call>");

        Assert.Equal("Let me check.", streamed);
        Assert.Null(rest);
        Assert.Equal("Let me check.", result.Content);
        Assert.Equal("get_weather", Assert.Single(result.ToolCalls).Name);
    }

    [Fact]
    public void PlainText_StreamsAllButTrailingWhiteSpace_WhichCompletes()
    {
        var (streamed, rest, result) = Stream(HermesToolCallParser.Instance, "Hello", " <", "b>", " world", "\n");

        Assert.Equal("Hello <b> world", streamed);
        Assert.Equal("\n", rest);
        Assert.Equal("Hello <b> world\n", result.Content);
    }

    [Fact]
    public void HeldTextThatIsNoCall_ComesOutAtTheEnd()
    {
        var (streamed, rest, result) = Stream(Llama3JsonToolCallParser.Instance, "{\"answer\"", ": 42}");

        Assert.Equal(string.Empty, streamed);
        Assert.Equal("{\"answer\": 42}", rest);
        Assert.False(result.HasToolCalls);
    }

    [Fact]
    public void MalformedCallAfterContent_RestIsTheHeldText()
    {
        var (streamed, rest, result) = Stream(MistralToolCallParser.Instance, "Sure.", " [TOOL_CALLS]", " [{\"name\": ");

        Assert.Equal("Sure.", streamed);
        Assert.Equal(" [TOOL_CALLS] [{\"name\": ", rest);
        Assert.False(result.HasToolCalls);
    }
}
