using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary>X-Request-Id, /tokenize and /detokenize, CORS defaults: on the default model.</summary>
public sealed class HttpFeatureTests(DefaultModelServer fixture) : IClassFixture<DefaultModelServer>
{
    private TestServer Server => fixture.Server;

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task RequestId_IsEchoedWhenGiven_AndGeneratedOtherwise()
    {
        using var given = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Json("""{"prompt":"x = ","max_tokens":1}""") };
        given.Headers.Add("X-Request-Id", "trace-me-42");
        using var answered = await Server.Http.SendAsync(given);
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        Assert.Equal("trace-me-42", answered.Headers.GetValues("X-Request-Id").Single());
        using var body = JsonDocument.Parse(await answered.Content.ReadAsStringAsync());
        Assert.Equal("cmpl-trace-me-42", body.RootElement.GetProperty("id").GetString());

        using var generated = await Server.Http.PostAsync("/v1/completions", Json("""{"prompt":"x = ","max_tokens":1}"""));
        var id = generated.Headers.GetValues("X-Request-Id").Single();
        Assert.Matches("^[0-9a-f]{32}$", id);

        // An unusable id (spaces, too long) is replaced, not echoed.
        using var bad = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        bad.Headers.TryAddWithoutValidation("X-Request-Id", new string('a', 200));
        using var replaced = await Server.Http.SendAsync(bad);
        Assert.Matches("^[0-9a-f]{32}$", replaced.Headers.GetValues("X-Request-Id").Single());
    }

    [Fact]
    public async Task Tokenize_MatchesTheCompletionsPromptCount_AndDetokenizeRoundTrips()
    {
        const string Prompt = "def fibonacci(n):";
        using var tokenized = await Server.Http.PostAsync("/tokenize", Json($$"""{"model":"tiny-pycoder","prompt":{{JsonSerializer.Serialize(Prompt)}},"return_token_strs":true}"""));
        Assert.Equal(HttpStatusCode.OK, tokenized.StatusCode);
        using var tokens = JsonDocument.Parse(await tokenized.Content.ReadAsStringAsync());
        var ids = tokens.RootElement.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(ids.Length, tokens.RootElement.GetProperty("count").GetInt32());
        Assert.Equal(2048, tokens.RootElement.GetProperty("max_model_len").GetInt32());
        Assert.Equal(ids.Length, tokens.RootElement.GetProperty("token_strs").GetArrayLength());

        var completion = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":1}""");
        Assert.Equal(ids.Length, completion.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        using var detokenized = await Server.Http.PostAsync("/detokenize", Json($$"""{"tokens":[{{string.Join(",", ids)}}]}"""));
        using var text = JsonDocument.Parse(await detokenized.Content.ReadAsStringAsync());
        Assert.Equal(Prompt, text.RootElement.GetProperty("prompt").GetString());
    }

    [Theory]
    [InlineData("/tokenize", """{"prompt":5}""", "prompt")]
    [InlineData("/tokenize", """{}""", "prompt")]
    [InlineData("/tokenize", """{"model":"other","prompt":"x"}""", "model")]
    [InlineData("/detokenize", """{"tokens":[1,99999]}""", "tokens")]
    [InlineData("/detokenize", """{"tokens":"abc"}""", "tokens")]
    [InlineData("/detokenize", """{}""", "tokens")]
    [InlineData("/detokenize", """[1,2]""", null)]
    public async Task Tokenize_BadInput_IsAnEnvelopeNamingTheParameter(string path, string json, string? param)
    {
        using var response = await Server.Http.PostAsync(path, Json(json));
        Assert.True(response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, response.StatusCode.ToString());
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = body.RootElement.GetProperty("error");
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        if (param is null)
        {
            Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        }
        else
        {
            Assert.Equal(param, error.GetProperty("param").GetString());
        }
    }

    [Fact]
    public async Task Cors_DefaultsAllowAnyOrigin_AndExposeTheRequestId()
    {
        using var preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/completions");
        preflight.Headers.Add("Origin", "https://app.example");
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        preflight.Headers.Add("Access-Control-Request-Headers", "authorization,content-type");
        using var answer = await Server.Http.SendAsync(preflight);
        Assert.Equal(HttpStatusCode.NoContent, answer.StatusCode);
        Assert.Equal("*", answer.Headers.GetValues("Access-Control-Allow-Origin").Single());

        using var simple = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        simple.Headers.Add("Origin", "https://app.example");
        using var models = await Server.Http.SendAsync(simple);
        Assert.Equal("*", models.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Contains("X-Request-Id", models.Headers.GetValues("Access-Control-Expose-Headers").Single(), StringComparison.OrdinalIgnoreCase);
    }
}

/// <summary>A server started with <c>--api-key</c> and a CORS origin list.</summary>
public sealed class ApiKeyServer() : ModelServerFixture(RepositoryPaths.DefaultModel, "--api-key", "sk-one,sk-two", "--allowed-origins", "[\"https://allowed.example\"]");

/// <summary><c>--api-key</c>: Bearer keys on every route but the probes and <c>/metrics</c>; restricted CORS origins.</summary>
public sealed class ApiKeyTests(ApiKeyServer fixture) : IClassFixture<ApiKeyServer>
{
    private TestServer Server => fixture.Server;

    [Theory]
    [InlineData(null)]
    [InlineData("Bearer wrong")]
    [InlineData("Bearer sk-on")]
    [InlineData("Basic sk-one")]
    public async Task MissingOrWrongKey_Is401InOpenAiEnvelope(string? authorization)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        using var response = await Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("invalid_api_key", body.RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("sk-one")]
    [InlineData("sk-two")]
    public async Task EitherKey_IsAccepted_ThroughTheOpenAiClient(string key)
    {
        var client = new OpenAI.OpenAIClient(new System.ClientModel.ApiKeyCredential(key), new OpenAI.OpenAIClientOptions { Endpoint = new Uri(Server.BaseAddress, "/v1") });
        var models = await client.GetOpenAIModelClient().GetModelsAsync();
        Assert.Equal("tiny-pycoder", Assert.Single(models.Value).Id);
    }

    [Fact]
    public async Task ProbesAndMetrics_NeedNoKey_ButTokenizeDoes()
    {
        using var ready = await Server.Http.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        using var live = await Server.Http.GetAsync("/health/live");
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        using var metrics = await Server.Http.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        using var tokenize = await Server.Http.PostAsync("/tokenize", new StringContent("""{"prompt":"x"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Unauthorized, tokenize.StatusCode);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/tokenize") { Content = new StringContent("""{"prompt":"x"}""", Encoding.UTF8, "application/json") };
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer sk-two");
        using var authorized = await Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, authorized.StatusCode);
    }

    [Fact]
    public async Task Cors_AllowsOnlyTheListedOrigin()
    {
        async Task<HttpResponseMessage> PreflightAsync(string origin)
        {
            var request = new HttpRequestMessage(HttpMethod.Options, "/v1/completions");
            request.Headers.Add("Origin", origin);
            request.Headers.Add("Access-Control-Request-Method", "POST");
            return await Server.Http.SendAsync(request);
        }

        using var allowed = await PreflightAsync("https://allowed.example");
        Assert.Equal("https://allowed.example", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
        using var other = await PreflightAsync("https://evil.example");
        Assert.False(other.Headers.Contains("Access-Control-Allow-Origin"));
    }
}
