using System.Text.Json;
using InferenceServer.OpenAi;
using InferenceServer.OpenAi.ToolCalls;

namespace InferenceServer.Tests.OpenAi.ToolCalls;

public sealed class ToolValidationTests
{
    internal const string WeatherTool = """{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a city.", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}""";
    internal const string TimeTool = """{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}""";

    private static JsonElement Json(string json) => JsonDocument.Parse(json).RootElement;

    private static ToolDefinitions Tools(params string[] tools) => ToolValidation.ParseTools(Json("[" + string.Join(",", tools) + "]"));

    [Fact]
    public void ValidTools_AreRead()
    {
        ToolDefinitions tools;
        using (var document = JsonDocument.Parse("[" + WeatherTool + "," + TimeTool + """, {"function": {"name": "no-params_1"}}]"""))
        {
            tools = ToolValidation.ParseTools(document.RootElement);
        }

        // The parameters outlive the request's document.
        Assert.Equal(["get_weather", "get_time", "no-params_1"], tools.Functions.Select(f => f.Name));
        Assert.Equal("Get the current weather in a city.", tools.Functions[0].Description);
        Assert.Equal(["city"], tools.Functions[0].Parameters!.Value.GetProperty("required").EnumerateArray().Select(e => e.GetString()));
        Assert.Null(tools.Functions[2].Parameters);
        Assert.True(tools.Names.SetEquals(["get_weather", "get_time", "no-params_1"]));
    }

    [Theory]
    [InlineData("""{"type": "function"}""", "tools")]
    [InlineData("""[{"type": "function", "function": {"name": "a"}}, "b"]""", "tools[1]")]
    [InlineData("""[{"type": "retrieval", "function": {"name": "a"}}]""", "tools[0].type")]
    [InlineData("""[{"type": "function"}]""", "tools[0].function")]
    [InlineData("""[{"type": "function", "function": "get_weather"}]""", "tools[0].function")]
    [InlineData("""[{"type": "function", "function": {"description": "x"}}]""", "tools[0].function.name")]
    [InlineData("""[{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "get weather"}}]""", "tools[1].function.name")]
    [InlineData("""[{"type": "function", "function": {"name": "a\n"}}]""", "tools[0].function.name")]
    [InlineData("""[{"type": "function", "function": {"name": ""}}]""", "tools[0].function.name")]
    [InlineData("""[{"type": "function", "function": {"name": 5}}]""", "tools[0].function.name")]
    [InlineData("""[{"type": "function", "function": {"name": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}]""", "tools[0].function.name")]
    [InlineData("""[{"type": "function", "function": {"name": "a", "parameters": ["x"]}}]""", "tools[0].function.parameters")]
    [InlineData("""[{"type": "function", "function": {"name": "a", "description": 3}}]""", "tools[0].function.description")]
    [InlineData("""[{"type": "function", "function": {"name": "a", "strict": "yes"}}]""", "tools[0].function.strict")]
    [InlineData("""[{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "a"}}]""", "tools[1].function.name")]
    public void InvalidTools_NameTheFieldPath(string tools, string path)
    {
        var error = Assert.Throws<RequestValidationException>(() => ToolValidation.ParseTools(Json(tools)));

        Assert.Equal(path, error.Param);
        Assert.StartsWith($"Invalid '{path}': ", error.Message, StringComparison.Ordinal);
        Assert.Equal(400, error.StatusCode);
    }

    [Fact]
    public void NameOf64Characters_IsAccepted()
        => Assert.Equal(64, Tools("""{"type": "function", "function": {"name": "NAME"}}""".Replace("NAME", new string('x', 64), StringComparison.Ordinal)).Functions[0].Name.Length);

    [Theory]
    [InlineData(null, true, "Auto")]
    [InlineData("null", true, "Auto")]
    [InlineData(null, false, "None")]
    [InlineData("\"none\"", false, "None")]
    [InlineData("\"none\"", true, "None")]
    [InlineData("\"auto\"", true, "Auto")]
    [InlineData("\"required\"", true, "Required")]
    public void ToolChoice_Modes(string? toolChoice, bool withTools, string expected)
    {
        var choice = ToolValidation.ParseToolChoice(toolChoice is null ? default : Json(toolChoice), withTools ? Tools(WeatherTool) : null);

        Assert.Equal(Enum.Parse<ToolChoiceMode>(expected), choice.Mode);
        Assert.Null(choice.FunctionName);
    }

    [Fact]
    public void ToolChoice_NamedFunction()
    {
        var choice = ToolValidation.ParseToolChoice(Json("""{"type": "function", "function": {"name": "get_time"}}"""), Tools(WeatherTool, TimeTool));

        Assert.Equal(new ToolChoice(ToolChoiceMode.Function, "get_time"), choice);
        Assert.True(choice.IsConstrained);
    }

    [Theory]
    [InlineData("\"sometimes\"", true, "tool_choice")]
    [InlineData("3", true, "tool_choice")]
    [InlineData("\"auto\"", false, "tool_choice")]
    [InlineData("\"required\"", false, "tool_choice")]
    [InlineData("""{"type": "function", "function": {"name": "get_time"}}""", false, "tool_choice")]
    [InlineData("""{"type": "function", "function": {"name": "get_time"}}""", true, "tool_choice.function.name")]
    [InlineData("""{"type": "tool", "function": {"name": "get_weather"}}""", true, "tool_choice.type")]
    [InlineData("""{"function": {"name": "get_weather"}}""", true, "tool_choice.type")]
    [InlineData("""{"type": "function"}""", true, "tool_choice.function")]
    [InlineData("""{"type": "function", "function": {}}""", true, "tool_choice.function.name")]
    [InlineData("""{"type": "function", "function": {"name": "bad name"}}""", true, "tool_choice.function.name")]
    public void InvalidToolChoice_NamesTheField(string toolChoice, bool withTools, string path)
    {
        var error = Assert.Throws<RequestValidationException>(() => ToolValidation.ParseToolChoice(Json(toolChoice), withTools ? Tools(WeatherTool) : null));

        Assert.Equal(path, error.Param);
        Assert.StartsWith($"Invalid '{path}': ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void EmptyTools_AreAcceptedAsNoTools_ButNotWithRequired()
    {
        var tools = Tools();

        Assert.Empty(tools.Functions);
        Assert.Equal(ToolChoiceMode.None, ToolValidation.ParseToolChoice(default, tools).Mode);
        Assert.Throws<RequestValidationException>(() => ToolValidation.ParseToolChoice(Json("\"required\""), tools));
    }
}
