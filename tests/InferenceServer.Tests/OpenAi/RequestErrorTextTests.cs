using System.Text.Json;
using InferenceServer.Engine;
using InferenceServer.OpenAi;

namespace InferenceServer.Tests.OpenAi;

/// <summary>Errors say what the client did wrong in the API's terms, never the parser's or C#'s; client sums never overflow.</summary>
public sealed class RequestErrorTextTests(CompletionRequestTests.ModelFixture fixture) : IClassFixture<CompletionRequestTests.ModelFixture>
{
    private readonly ServedModel _model = fixture.Model;

    private RequestValidationException Refuse(string json)
        => Assert.Throws<RequestValidationException>(() => CompletionRequest.Parse(JsonDocument.Parse(json).RootElement, _model));

    [Theory]
    [InlineData("""{"prompt":"x","max_tokens":2147483647,"n":16}""", "max_tokens", "2147483648 tokens")]
    [InlineData("""{"prompt":"x","max_tokens":2147483647}""", "max_tokens", "maximum context length")]
    [InlineData("""{"prompt":"x","max_tokens":2147483648}""", "max_tokens", "between 1 and 2147483647")]
    [InlineData("""{"prompt":"x","max_tokens":1e300}""", "max_tokens", "between 1 and 2147483647")]
    [InlineData("""{"prompt":"x","seed":9223372036854775808}""", "seed", "between")]
    [InlineData("""{"prompt":"x","seed":9.3e18}""", "seed", "between")]
    [InlineData("""{"prompt":"x","temperature":1e999}""", "temperature", "'temperature' must be a finite number")]
    [InlineData("""{"prompt":"x","n":1.5}""", "n", "'n' must be an integer between 1 and 16; got 1.5")]
    [InlineData("""{"prompt":"x","min_tokens":2147483647}""", "min_tokens", "must not exceed")]
    [InlineData("""{"prompt":"x","priority":-2147483649}""", "priority", "between")]
    public void OverflowingOrNonFiniteNumbers_Are400NamingTheField(string json, string param, string text)
    {
        var error = Refuse(json);
        Assert.Equal(400, error.StatusCode);
        Assert.Equal(param, error.Param);
        Assert.Contains(text, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"a\":" + "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[" + "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]" + "}", "more than 64 levels deep")]
    [InlineData("""{"a":1,}""", "at line 1, byte 8")]
    [InlineData("""{"a":""", "not valid JSON")]
    public void JsonErrors_SpeakOfTheBody_NotTheReader(string json, string text)
    {
        var error = Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = JsonBody.MaxDepth }));
        var message = JsonBody.Describe(error);
        Assert.Contains(text, message, StringComparison.Ordinal);
        Assert.DoesNotContain("reader options", message, StringComparison.Ordinal);
        Assert.DoesNotContain("LineNumber", message, StringComparison.Ordinal);
    }

    [Fact]
    public void ArgumentText_DropsTheParameterSuffix()
        => Assert.Equal("key 'x' is reserved", InferenceServer.OpenAi.Chat.ChatPromptRenderer.ArgumentText(new ArgumentException("key 'x' is reserved", "extraKwargs")));
}
