using InferenceServer.OpenAi.ToolCalls;

namespace InferenceServer.Tests.OpenAi.ToolCalls;

public sealed class MistralToolCallParserTests
{
    private static readonly HashSet<string> Names = ["get_weather", "get_time"];
    private readonly MistralToolCallParser _parser = MistralToolCallParser.Instance;

    // Mistral 7B Instruct v0.3's tool template renders a call as "[TOOL_CALLS] " + the JSON list of calls + "</s>"
    // (the release template in fixtures/ predates tools; see ToolCallParsersTests).
    [Fact]
    public void V03Array_TwoCalls_NineCharacterIds()
    {
        var text = "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}, {\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}}]";

        var result = StreamingContract.AssertHolds(_parser, text, Names);

        Assert.Null(result.Content);
        Assert.Equal(["get_weather", "get_time"], result.ToolCalls.Select(c => c.Name));
        Assert.Equal("""{"city":"Paris","unit":"celsius"}""", result.ToolCalls[0].ArgumentsJson);
        Assert.All(result.ToolCalls, c => Assert.Matches("^[A-Za-z0-9]{9}$", c.Id));
    }

    [Fact]
    public void ContentBeforeMarker_IsContent()
    {
        var result = StreamingContract.AssertHolds(_parser, "Checking. [TOOL_CALLS] [{\"name\": \"get_time\", \"arguments\": {}}]", Names);

        Assert.Equal("Checking.", result.Content);
        Assert.Equal("get_time", Assert.Single(result.ToolCalls).Name);
    }

    [Theory]
    [InlineData("[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]get_time[ARGS]{\"tz\": \"CET\"}")]
    [InlineData("[TOOL_CALLS]get_weather{\"city\": \"Paris\"}[TOOL_CALLS]get_time{\"tz\": \"CET\"}")]
    [InlineData("[TOOL_CALLS]get_weather{\"city\": \"Paris\"}, get_time{\"tz\": \"CET\"}")]
    [InlineData("[TOOL_CALLS] {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}[TOOL_CALLS] {\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}}")]
    public void V11AndSingleObjectForms_AreParsed(string text)
    {
        var result = StreamingContract.AssertHolds(_parser, text, Names);

        Assert.Equal(["get_weather", "get_time"], result.ToolCalls.Select(c => c.Name));
        Assert.Equal(["""{"city":"Paris"}""", """{"tz":"CET"}"""], result.ToolCalls.Select(c => c.ArgumentsJson));
    }

    [Theory]
    [InlineData("[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": ")]
    [InlineData("[TOOL_CALLS] []")]
    [InlineData("[TOOL_CALLS]")]
    [InlineData("[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {}}, {\"name\": \"rm_rf\", \"arguments\": {}}]")]
    [InlineData("[TOOL_CALLS]get_weather[ARGS]not json")]
    [InlineData("[TOOL_CALLS] [\"get_weather\"]")]
    public void Malformed_WholeTextIsContent(string text)
    {
        var result = StreamingContract.AssertHolds(_parser, text, Names);

        Assert.False(result.HasToolCalls);
        Assert.Equal(text, result.Content);
    }

    [Theory]
    [InlineData("Plain answer.", 13)]
    [InlineData("[TOOL", 0)]
    [InlineData("Sure [TOOL_CALLS] [", 4)]
    [InlineData("A list: [1, 2]", 14)]
    public void SafeContentPrefixLength_HoldsBackTheMarker(string textSoFar, int expected)
        => Assert.Equal(expected, _parser.SafeContentPrefixLength(textSoFar));
}
