using System.Text.Json;
using System.Text.Json.Nodes;
using InferenceServer.OpenAi;
using InferenceServer.OpenAi.ToolCalls;
using Json.Schema;

namespace InferenceServer.Tests.OpenAi.ToolCalls;

public sealed class ToolChoiceSchemasTests
{
    private static readonly ToolDefinitions WeatherAndTime = Tools(ToolValidationTests.WeatherTool, ToolValidationTests.TimeTool);

    private static JsonElement Json(string json) => JsonDocument.Parse(json).RootElement;

    private static ToolDefinitions Tools(params string[] tools) => ToolValidation.ParseTools(Json("[" + string.Join(",", tools) + "]"));

    /// <summary>Whether <paramref name="instance"/> is valid under <paramref name="schema"/>, by JsonSchema.Net (draft 2020-12).</summary>
    private static bool Accepts(JsonObject schema, string instance)
        => JsonSchema.FromText(schema.ToJsonString(), new BuildOptions()).Evaluate(Json(instance), new EvaluationOptions()).IsValid;

    [Theory]
    [InlineData("""{"city": "Paris"}""", true)]
    [InlineData("""{"city": "Paris", "unit": "celsius"}""", true)]
    [InlineData("""{"unit": "celsius"}""", false)]
    [InlineData("""{"city": "Paris", "unit": "kelvin"}""", false)]
    [InlineData("""{"city": 7}""", false)]
    [InlineData("""[{"city": "Paris"}]""", false)]
    public void ForNamed_IsTheFunctionsParameters(string arguments, bool valid)
    {
        var schema = ToolChoiceSchemas.ForNamed(WeatherAndTime, "get_weather");

        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(WeatherAndTime.Functions[0].Parameters!.Value.GetRawText()), schema));
        Assert.Equal(valid, Accepts(schema, arguments));
    }

    [Fact]
    public void ForNamed_WithoutParameters_IsAnyObject()
    {
        var schema = ToolChoiceSchemas.ForNamed(Json("""[{"type": "function", "function": {"name": "ping"}}]"""), "ping");

        Assert.Equal("""{"type":"object","properties":{}}""", schema.ToJsonString());
        Assert.True(Accepts(schema, "{}"));
        Assert.False(Accepts(schema, "[]"));
    }

    [Fact]
    public void ForNamed_UnknownFunctionOrBadTools_AreRequestErrors()
    {
        Assert.Equal("tool_choice.function.name", Assert.Throws<RequestValidationException>(() => ToolChoiceSchemas.ForNamed(WeatherAndTime, "nope")).Param);
        Assert.Equal("tools[0].function.name", Assert.Throws<RequestValidationException>(() => ToolChoiceSchemas.ForNamed(Json("""[{"function": {"name": "a b"}}]"""), "a b")).Param);
    }

    [Fact]
    public void ForRequired_HasVllmsShape_WithTheObjectTypeInEachBranch()
    {
        var schema = ToolChoiceSchemas.ForRequired(Json("""[{"type": "function", "function": {"name": "ping"}}, {"type": "function", "function": {"name": "echo", "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}}]"""));

        Assert.Equal(
            """{"type":"array","minItems":1,"items":{"anyOf":[{"type":"object","properties":{"name":{"type":"string","enum":["ping"]},"parameters":{"type":"object","properties":{}}},"required":["name","parameters"]},{"type":"object","properties":{"name":{"type":"string","enum":["echo"]},"parameters":{"type":"object","properties":{"text":{"type":"string"}}}},"required":["name","parameters"]}]}}""",
            schema.ToJsonString());
    }

    [Theory]
    [InlineData("""[{"name": "get_weather", "parameters": {"city": "Paris"}}]""", true)]
    [InlineData("""[{"name": "get_weather", "parameters": {"city": "Paris"}}, {"name": "get_time", "parameters": {"tz": "CET"}}]""", true)]
    [InlineData("""[]""", false)]
    [InlineData("""{"name": "get_weather", "parameters": {"city": "Paris"}}""", false)]
    [InlineData("""[{"name": "get_weather", "parameters": {"unit": "celsius"}}]""", false)]
    [InlineData("""[{"name": "get_time", "parameters": {"city": "Paris"}}]""", false)]
    [InlineData("""[{"name": "launch", "parameters": {}}]""", false)]
    [InlineData("""[{"name": "get_weather"}]""", false)]
    public void ForRequired_AcceptsOnlyCallsOfDeclaredFunctions(string output, bool valid)
        => Assert.Equal(valid, Accepts(ToolChoiceSchemas.ForRequired(WeatherAndTime), output));

    [Fact]
    public void ForRequired_MovesDefsToTheRoot_WhereReferencesResolve()
    {
        const string PointDefs = "\"$defs\": {\"point\": {\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"number\"}, \"y\": {\"type\": \"number\"}}, \"required\": [\"x\", \"y\"]}}";
        var tools = Tools(
            """{"type": "function", "function": {"name": "move", "parameters": {"type": "object", "properties": {"to": {"$ref": "#/$defs/point"}}, "required": ["to"], DEFS}}}""".Replace("DEFS", PointDefs, StringComparison.Ordinal),
            """{"type": "function", "function": {"name": "line", "parameters": {"type": "object", "properties": {"from": {"$ref": "#/$defs/point"}, "to": {"$ref": "#/$defs/point"}}, DEFS}}}""".Replace("DEFS", PointDefs, StringComparison.Ordinal));

        var schema = ToolChoiceSchemas.ForRequired(tools);

        Assert.NotNull(schema["$defs"]?["point"]);
        Assert.False(schema["items"]!["anyOf"]![0]!["properties"]!["parameters"]!.AsObject().ContainsKey("$defs"));
        Assert.True(Accepts(schema, """[{"name": "move", "parameters": {"to": {"x": 1, "y": 2}}}]"""));
        Assert.False(Accepts(schema, """[{"name": "move", "parameters": {"to": {"x": 1}}}]"""));
        Assert.False(Accepts(schema, """[{"name": "line", "parameters": {"from": {"x": "1", "y": 2}}}]"""));

        // The named schema keeps the $defs where its references look for them.
        Assert.True(Accepts(ToolChoiceSchemas.ForNamed(tools, "move"), """{"to": {"x": 1, "y": 2}}"""));
        Assert.False(Accepts(ToolChoiceSchemas.ForNamed(tools, "move"), """{"to": {"y": 2}}"""));
    }

    [Fact]
    public void ForRequired_ConflictingDefs_AreRefused()
    {
        var tools = Tools(
            """{"type": "function", "function": {"name": "a", "parameters": {"type": "object", "$defs": {"t": {"type": "string"}}}}}""",
            """{"type": "function", "function": {"name": "b", "parameters": {"type": "object", "$defs": {"t": {"type": "number"}}}}}""");

        Assert.Equal("tools", Assert.Throws<RequestValidationException>(() => ToolChoiceSchemas.ForRequired(tools)).Param);
    }

    [Fact]
    public void For_OnlyConstrainsRequiredAndNamed()
    {
        Assert.Null(ToolChoiceSchemas.For(ToolChoice.Auto, WeatherAndTime));
        Assert.Null(ToolChoiceSchemas.For(ToolChoice.None, null));
        Assert.Equal("array", (string?)ToolChoiceSchemas.For(ToolChoice.Required, WeatherAndTime)!["type"]);
        Assert.Equal("object", (string?)ToolChoiceSchemas.For(new ToolChoice(ToolChoiceMode.Function, "get_time"), WeatherAndTime)!["type"]);
    }

    [Fact]
    public void ToToolCalls_Named_OutputIsTheArguments()
    {
        var result = ToolChoiceSchemas.ToToolCalls(new ToolChoice(ToolChoiceMode.Function, "get_weather"), """{ "city": "Paris" }""", ToolCallFormat.Hermes);

        Assert.Null(result.Content);
        var call = Assert.Single(result.ToolCalls);
        Assert.Equal("get_weather", call.Name);
        Assert.Equal("""{"city":"Paris"}""", call.ArgumentsJson);
        Assert.Matches("^call_[A-Za-z0-9]{24}$", call.Id);
    }

    [Fact]
    public void ToToolCalls_Required_OneCallPerItem_MistralIds()
    {
        var result = ToolChoiceSchemas.ToToolCalls(ToolChoice.Required, """[{"name": "get_weather", "parameters": {"city": "Paris"}}, {"name": "get_time", "parameters": {"tz": "CET"}}]""", ToolCallFormat.Mistral);

        Assert.Equal(["get_weather", "get_time"], result.ToolCalls.Select(c => c.Name));
        Assert.Equal(["""{"city":"Paris"}""", """{"tz":"CET"}"""], result.ToolCalls.Select(c => c.ArgumentsJson));
        Assert.All(result.ToolCalls, c => Assert.Matches("^[A-Za-z0-9]{9}$", c.Id));
    }

    [Theory]
    [InlineData("""[{"name": "get_weather", "parameters": {"city": "Par""")]
    [InlineData("""[]""")]
    [InlineData("""{"name": "get_weather", "parameters": {}}""")]
    [InlineData("""[{"parameters": {}}]""")]
    public void ToToolCalls_OutputCutShort_IsContent(string output)
    {
        var result = ToolChoiceSchemas.ToToolCalls(ToolChoice.Required, output, ToolCallFormat.Hermes);

        Assert.False(result.HasToolCalls);
        Assert.Equal(output, result.Content);
    }

    [Fact]
    public void ToToolCalls_NamedWithNonObject_IsContent()
        => Assert.Equal("[1]", ToolChoiceSchemas.ToToolCalls(new ToolChoice(ToolChoiceMode.Function, "f"), "[1]", ToolCallFormat.Hermes).Content);

    [Fact]
    public void ToToolCalls_UnconstrainedChoice_IsAProgrammingError()
        => Assert.Throws<ArgumentException>(() => ToolChoiceSchemas.ToToolCalls(ToolChoice.Auto, "{}", ToolCallFormat.Hermes));
}
