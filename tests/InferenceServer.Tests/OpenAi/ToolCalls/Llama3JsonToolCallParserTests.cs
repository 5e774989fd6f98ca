using InferenceServer.OpenAi.ToolCalls;

namespace InferenceServer.Tests.OpenAi.ToolCalls;

public sealed class Llama3JsonToolCallParserTests
{
    private static readonly HashSet<string> Names = ["get_weather", "get_time"];
    private readonly Llama3JsonToolCallParser _parser = Llama3JsonToolCallParser.Instance;

    [Fact]
    public void Llama31Rendering_AssistantTurnIsOneCall()
    {
        // The assistant turn as Llama 3.1's template renders a tool call, with "parameters".
        var output = ChatTemplateFixtures.ToolsOutput("llama-3.1-instruct");
        var turn = ChatTemplateFixtures.Between(output, "<|start_header_id|>assistant<|end_header_id|>\n\n", "{\"name\": \"get_weather\"", "<|eot_id|>");
        Assert.Equal("""{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}""", turn);

        var result = StreamingContract.AssertHolds(_parser, turn, Names);

        Assert.Null(result.Content);
        var call = Assert.Single(result.ToolCalls);
        Assert.Equal("get_weather", call.Name);
        Assert.Equal("""{"city":"Paris","unit":"celsius"}""", call.ArgumentsJson);
        Assert.Matches("^call_[A-Za-z0-9]{24}$", call.Id);
    }

    [Theory]
    [InlineData("<|python_tag|>{\"name\": \"get_time\", \"parameters\": {\"tz\": \"UTC\"}}")]
    [InlineData("\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}\n")]
    [InlineData("{\"name\": \"get_time\", \"parameters\": {\"tz\": \"UTC\"}} I called get_time.")]
    public void SingleCall_WithTagOrArgumentsOrTrailingText(string text)
    {
        var result = StreamingContract.AssertHolds(_parser, text, Names);

        Assert.Null(result.Content);
        Assert.Equal("get_time", Assert.Single(result.ToolCalls).Name);
        Assert.Equal("""{"tz":"UTC"}""", result.ToolCalls[0].ArgumentsJson);
    }

    [Fact]
    public void CallsSeparatedBySemicolons_AreAllParsed()
    {
        var text = "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}; {\"name\": \"get_time\", \"parameters\": {\"tz\": \"CET\"}};";

        var result = StreamingContract.AssertHolds(_parser, text, Names);

        Assert.Equal(["get_weather", "get_time"], result.ToolCalls.Select(c => c.Name));
        Assert.Equal("""{"tz":"CET"}""", result.ToolCalls[1].ArgumentsJson);
    }

    [Fact]
    public void TextBeforePythonTag_IsContent()
    {
        var result = StreamingContract.AssertHolds(_parser, "Let me look that up.\n<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", Names);

        Assert.Equal("Let me look that up.", result.Content);
        Assert.Equal("get_weather", Assert.Single(result.ToolCalls).Name);
    }

    [Theory]
    [InlineData("The format is {\"name\": \"get_time\", \"parameters\": {}} as you asked.")]
    [InlineData("{\"answer\": 42}")]
    [InlineData("{\"name\": \"get_time\", \"parameters\": {}, \"arguments\": {}}")]
    [InlineData("{\"name\": \"get_time\", \"parameters\": {\"tz\": ")]
    [InlineData("{\"name\": \"get_time\", \"parameters\": {}}; {\"name\": \"nope\", \"parameters\": {}}")]
    [InlineData("<|python_tag|>brave_search.call(query=\"weather Paris\")")]
    [InlineData("{not json}")]
    public void NotACall_WholeTextIsContent(string text)
    {
        var result = StreamingContract.AssertHolds(_parser, text, Names);

        Assert.False(result.HasToolCalls);
        Assert.Equal(text, result.Content);
    }

    [Theory]
    [InlineData("Hello", 5)]
    [InlineData("Hello there ", 11)]
    [InlineData("", 0)]
    [InlineData("  ", 0)]
    [InlineData("{\"na", 0)]
    [InlineData(" {", 0)]
    [InlineData("<|py", 0)]
    [InlineData("Hello <|py", 5)]
    [InlineData("Sure<|python_tag|>{", 4)]
    [InlineData("<b>bold</b>", 11)]
    public void SafeContentPrefixLength_HoldsWhileOutputMayBeACall(string textSoFar, int expected)
        => Assert.Equal(expected, _parser.SafeContentPrefixLength(textSoFar));
}
