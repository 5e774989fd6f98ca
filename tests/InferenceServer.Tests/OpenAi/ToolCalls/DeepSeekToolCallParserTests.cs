using InferenceServer.OpenAi.ToolCalls;

namespace InferenceServer.Tests.OpenAi.ToolCalls;

public sealed class DeepSeekToolCallParserTests
{
    // The assistant turn that deepseek-r1.jinja renders for the fixtures' tools conversation when the call's
    // arguments are a JSON string, as OpenAI clients send them (Jinja2 3.1, same settings as the fixtures; the
    // fixture itself passed a dict, which the template cannot concatenate: see ToolCallParsersTests).
    private const string RenderedCall =
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\", \"unit\": \"celsius\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";

    private const string TwoCalls =
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\", \"unit\": \"celsius\"}\n```<｜tool▁call▁end｜>\n"
        + "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{\"tz\": \"CET\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";

    private static readonly HashSet<string> Names = ["get_weather", "get_time"];
    private readonly DeepSeekToolCallParser _parser = DeepSeekToolCallParser.Instance;

    [Fact]
    public void RenderedCall_IsOneCall()
    {
        var result = StreamingContract.AssertHolds(_parser, RenderedCall, Names);

        Assert.Null(result.Content);
        var call = Assert.Single(result.ToolCalls);
        Assert.Equal("get_weather", call.Name);
        Assert.Equal("""{"city":"Paris","unit":"celsius"}""", call.ArgumentsJson);
        Assert.Matches("^call_[A-Za-z0-9]{24}$", call.Id);
    }

    [Fact]
    public void TwoCalls_AsTheTemplateJoinsThem()
    {
        var result = StreamingContract.AssertHolds(_parser, TwoCalls, Names);

        Assert.Equal(["get_weather", "get_time"], result.ToolCalls.Select(c => c.Name));
        Assert.Equal("""{"tz":"CET"}""", result.ToolCalls[1].ArgumentsJson);
    }

    [Fact]
    public void R1Reasoning_StaysInContent()
    {
        var text = "<think>\nThe user wants the weather; I should call get_weather.\n</think>\n\n" + RenderedCall;

        var result = StreamingContract.AssertHolds(_parser, text, Names);

        Assert.Equal("<think>\nThe user wants the weather; I should call get_weather.\n</think>", result.Content);
        Assert.Single(result.ToolCalls);
    }

    [Theory]
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{\"tz\": \"CET\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>")]
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{\"tz\": \"CET\"}\n```<｜tool▁call▁end｜>")]
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n{\"tz\": \"CET\"}<｜tool▁call▁end｜>")]
    public void V31FormMissingEndMarkerAndUnfencedArguments_AreParsed(string text)
    {
        var result = StreamingContract.AssertHolds(_parser, text, Names);

        Assert.Equal("get_time", Assert.Single(result.ToolCalls).Name);
        Assert.Equal("""{"tz":"CET"}""", result.ToolCalls[0].ArgumentsJson);
    }

    [Theory]
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{\"tz\": \"CE")]
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{tz: CET}\n```<｜tool▁call▁end｜>")]
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function get_time {}<｜tool▁call▁end｜>")]
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>format_disk\n```json\n{}\n```<｜tool▁call▁end｜>")]
    [InlineData("<｜tool▁calls▁begin｜><｜tool▁calls▁end｜>")]
    public void Malformed_WholeTextIsContent(string text)
    {
        var result = StreamingContract.AssertHolds(_parser, text, Names);

        Assert.False(result.HasToolCalls);
        Assert.Equal(text, result.Content);
    }

    [Theory]
    [InlineData("Okay", 4)]
    [InlineData("<｜tool", 0)]
    [InlineData("Okay <｜tool▁calls", 4)]
    [InlineData("Okay <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>", 4)]
    public void SafeContentPrefixLength_HoldsBackTheMarker(string textSoFar, int expected)
        => Assert.Equal(expected, _parser.SafeContentPrefixLength(textSoFar));
}
