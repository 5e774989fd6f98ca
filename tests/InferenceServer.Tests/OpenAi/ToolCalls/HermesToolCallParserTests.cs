using InferenceServer.OpenAi.ToolCalls;

namespace InferenceServer.Tests.OpenAi.ToolCalls;

public sealed class HermesToolCallParserTests
{
    private const string WeatherCall = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>";
    private const string TimeCall = "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"Europe/Paris\"}}\n</tool_call>";
    private static readonly HashSet<string> Names = ["get_weather", "get_time"];
    private readonly HermesToolCallParser _parser = HermesToolCallParser.Instance;

    [Fact]
    public void QwenRendering_AssistantTurnIsOneCall()
    {
        // The assistant turn exactly as Qwen 2.5's template renders a tool call: the format the model is trained on.
        var output = ChatTemplateFixtures.ToolsOutput("qwen2.5-instruct");
        var turn = ChatTemplateFixtures.Between(output, "<|im_start|>assistant\n", "<tool_call>\n{\"name\": \"get_weather\"", "<|im_end|>");
        Assert.Equal(WeatherCall, turn);

        var result = StreamingContract.AssertHolds(_parser, turn, Names);

        Assert.Null(result.Content);
        var call = Assert.Single(result.ToolCalls);
        Assert.Equal("get_weather", call.Name);
        Assert.Equal("""{"city":"Paris","unit":"celsius"}""", call.ArgumentsJson);
        Assert.Matches("^call_[A-Za-z0-9]{24}$", call.Id);
    }

    [Fact]
    public void ContentAndTwoCalls_ContentIsTextBeforeFirstCall()
    {
        // Qwen's template writes content, "\n", then the calls separated by "\n": the separator is not content.
        var text = "Let me check both.\n" + WeatherCall + "\n" + TimeCall;

        var result = StreamingContract.AssertHolds(_parser, text, Names);

        Assert.Equal("Let me check both.", result.Content);
        Assert.Equal(["get_weather", "get_time"], result.ToolCalls.Select(c => c.Name));
        Assert.Equal("""{"tz":"Europe/Paris"}""", result.ToolCalls[1].ArgumentsJson);
        Assert.NotEqual(result.ToolCalls[0].Id, result.ToolCalls[1].Id);
    }

    [Fact]
    public void LastCallWithoutClosingTag_IsParsed()
    {
        var result = _parser.Parse("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n");

        Assert.Equal("get_time", Assert.Single(result.ToolCalls).Name);
        Assert.Equal("{}", result.ToolCalls[0].ArgumentsJson);
    }

    [Theory]
    [InlineData("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par\n</tool_call>")]
    [InlineData("<tool_call>\n{\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>")]
    [InlineData("<tool_call>\n{\"name\": 7, \"arguments\": {}}\n</tool_call>")]
    [InlineData("<tool_call>\n[\"get_weather\"]\n</tool_call>")]
    [InlineData("<tool_call>\n</tool_call>")]
    [InlineData("Sure: <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}")]
    public void MalformedCall_WholeTextIsContent(string text)
    {
        var result = StreamingContract.AssertHolds(_parser, text, Names);

        Assert.False(result.HasToolCalls);
        Assert.Equal(text, result.Content);
    }

    [Fact]
    public void UndeclaredFunction_IsContent_UnlessNoNamesAreGiven()
    {
        var text = "<tool_call>\n{\"name\": \"launch_rocket\", \"arguments\": {}}\n</tool_call>";

        Assert.Equal(text, _parser.Parse(text, Names).Content);
        Assert.Equal("launch_rocket", Assert.Single(_parser.Parse(text).ToolCalls).Name);
    }

    [Fact]
    public void Arguments_StringIsKept_ObjectIsCompactWithUnicodeAndNumbersAsWritten()
    {
        var asString = _parser.Parse("<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}</tool_call>");
        var asObject = _parser.Parse("<tool_call>{\"name\": \"f\", \"arguments\": {\"city\": \"Zürich\", \"price\": 1.50, \"tags\": [\"a\", \"<b>\"], \"none\": null}}</tool_call>");
        var absent = _parser.Parse("<tool_call>{\"name\": \"f\"}</tool_call>");

        Assert.Equal("{\"a\": 1}", asString.ToolCalls[0].ArgumentsJson);
        Assert.Equal("""{"city":"Zürich","price":1.50,"tags":["a","<b>"],"none":null}""", asObject.ToolCalls[0].ArgumentsJson);
        Assert.Equal("{}", absent.ToolCalls[0].ArgumentsJson);
    }

    [Theory]
    [InlineData("The weather is fine.")]
    [InlineData("  leading and trailing  \n")]
    [InlineData("")]
    [InlineData("I would write <tool_call without closing it")]
    public void TextWithoutCall_IsContentUnchanged(string text)
    {
        var result = StreamingContract.AssertHolds(_parser, text, Names);

        Assert.False(result.HasToolCalls);
        Assert.Equal(text, result.Content);
    }

    [Theory]
    [InlineData("Hello world", 11)]
    [InlineData("Hello <tool_", 5)]
    [InlineData("Hello <", 5)]
    [InlineData("Hello <b>", 9)]
    [InlineData("Hello\n\n", 5)]
    [InlineData("Hi\n<tool_call>\n{\"name\"", 2)]
    [InlineData("<tool_call>", 0)]
    [InlineData(" \n", 0)]
    [InlineData("a <tool_call> b <tool_", 1)]
    public void SafeContentPrefixLength_HoldsBackWhatMayStartACall(string textSoFar, int expected)
        => Assert.Equal(expected, _parser.SafeContentPrefixLength(textSoFar));
}
