using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using CsCheck;
using InferenceServer.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// Integer-overflow and edge values in every numeric field of every JSON endpoint (alone and combined, such as
/// <c>n</c> 16 with <c>max_tokens</c> 2147483647), and bodies whose chunked framing overflows. Property: a 4xx in
/// OpenAI's envelope or a valid answer, never a 5xx; afterwards the server answers as before with an idle engine.
/// <c>FUZZ_ITERATIONS</c> sets the count (default 300).
/// </summary>
public sealed class HttpOverflowFuzzTests(FuzzServer fixture, ITestOutputHelper output) : IClassFixture<FuzzServer>
{
    private static readonly string[] Edges =
    [
        "2147483647", "2147483648", "-2147483648", "-2147483649", "4294967295", "4294967296", "9223372036854775807",
        "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "18446744073709551615", "18446744073709551616",
        "1e19", "-1e19", "9.223372036854775807e18", "2147483647.0", "2147483647.5", "1e308", "-1e308", "1e309", "-1e309",
        "4.9e-324", "-0", "0", "1", "-1", "1e-400", "123456789012345678901234567890",
    ];

    private static readonly string[] GenerationFields =
    [
        "max_tokens", "n", "logprobs", "top_k", "seed", "min_tokens", "priority", "prompt_logprobs", "timeout", "temperature",
        "top_p", "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty", "best_of",
    ];

    private static readonly string[] ChatFields = ["max_completion_tokens", "max_tokens", "n", "top_logprobs", "top_k", "seed", "min_tokens", "priority", "timeout", "temperature", "top_p"];

    /// <summary>One request: path and JSON body.</summary>
    public sealed record Overflow(string Path, string Body)
    {
        public override string ToString() => $"{Path} {Body}";
    }

    private static Gen<string> Fields(string[] names, string fixedPart)
        => Gen.Select(Gen.OneOf(names), Gen.OneOf(Edges), static (name, value) => (name, value)).Array[1, 5].Select(pairs =>
        {
            var fields = new Dictionary<string, string>();
            foreach (var (name, value) in pairs)
            {
                fields[name] = value;
            }

            return "{" + fixedPart + string.Concat(fields.Select(p => "," + JsonSerializer.Serialize(p.Key) + ":" + p.Value)) + "}";
        });

    private static readonly Gen<Overflow> Requests = Gen.Frequency(
        (3, Fields(GenerationFields, "\"prompt\":\"def f():\"").Select(b => new Overflow("/v1/completions", b))),
        (3, Fields(ChatFields, "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]").Select(b => new Overflow("/v1/chat/completions", b))),
        (1, Gen.OneOf(Edges).Select(v => new Overflow("/v1/completions", $$"""{"prompt":[{{v}}],"max_tokens":1}"""))),
        (1, Gen.OneOf(Edges).Select(v => new Overflow("/v1/completions", $$"""{"prompt":"x","max_tokens":1,"stop_token_ids":[{{v}}]}"""))),
        (1, Gen.OneOf(Edges).Select(v => new Overflow("/v1/completions", $$$"""{"prompt":"x","max_tokens":1,"logit_bias":{"{{{v}}}":1}}"""))),
        (1, Gen.OneOf(Edges).Select(v => new Overflow("/v1/completions", $$$"""{"prompt":"x","max_tokens":1,"logit_bias":{"5":{{{v}}}}}"""))),
        (1, Gen.OneOf(Edges).Select(v => new Overflow("/detokenize", $$"""{"tokens":[{{v}}]}"""))),
        (1, Gen.OneOf(Edges).Select(v => new Overflow("/tokenize", $$"""{"prompt":[{{v}}]}"""))));

    [Fact]
    public async Task OverflowingNumbers_AreNever5xx()
    {
        var server = fixture.Server;
        const string Reference = """{"prompt":"def fibonacci(n):","max_tokens":8,"temperature":0}""";
        var before = await server.CompleteAsync(Reference);
        var iterations = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_ITERATIONS"), out var n) ? Math.Max(50, n / 2) : 300;
        var statuses = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        await Requests.SampleAsync(
            async request =>
            {
                var status = request.Path.StartsWith("/v1/", StringComparison.Ordinal)
                    ? await HttpFuzzTests.SendAndCheckAsync(server.Http, new HttpFuzzTests.FuzzRequest(request.Path, Encoding.UTF8.GetBytes(request.Body), string.Empty), ShortDeadline(request.Body))
                    : await SendTokenizeAsync(server.Http, request);
                statuses.AddOrUpdate(status, 1, static (_, c) => c + 1);
            },
            iter: iterations,
            threads: 2,
            writeLine: output.WriteLine);

        output.WriteLine("statuses: " + string.Join(", ", statuses.OrderBy(p => p.Key).Select(p => $"{p.Key}x{p.Value}")));
        Assert.True(statuses.ContainsKey(400), "nothing was refused: the generator is too tame");
        var after = await server.CompleteAsync(Reference);
        Assert.Equal(before.GetProperty("choices")[0].GetProperty("text").GetString(), after.GetProperty("choices")[0].GetProperty("text").GetString());
        await Eventually.TrueAsync(() => server.Scheduler.ActiveRequests == 0 && server.Scheduler.UsedBlocks == 0 && server.Scheduler.QueuedRequests == 0, "idle engine");
    }

    /// <summary>
    /// Whether the body's <c>timeout</c> is a deadline an unbounded generation may outlive (a positive number under a
    /// minute, such as the edge value 1): the server must then answer 504 <c>timeout_error</c>, which is correct.
    /// </summary>
    private static bool ShortDeadline(string body)
    {
        using var document = JsonDocument.Parse(body);
        return document.RootElement.TryGetProperty("timeout", out var value) && value.ValueKind == JsonValueKind.Number
            && value.TryGetDouble(out var seconds) && seconds > 0 && seconds < 60;
    }

    private static async Task<int> SendTokenizeAsync(HttpClient http, Overflow request)
    {
        using var content = new StringContent(request.Body, Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var response = await http.PostAsync(request.Path, content, timeout.Token);
        var text = await response.Content.ReadAsStringAsync(timeout.Token);
        var status = (int)response.StatusCode;
        Assert.True(status < 500, $"{status} for {request}: {text}");
        if (status >= 400)
        {
            using var document = JsonDocument.Parse(text);
            Assert.False(string.IsNullOrEmpty(document.RootElement.GetProperty("error").GetProperty("message").GetString()), text);
        }

        return status;
    }

    [Fact]
    public async Task SixteenChoicesOfMaxIntTokens_Is400NamingMaxTokens()
    {
        var (status, body) = await fixture.Server.PostRawAsync("/v1/completions", """{"prompt":"def f():","n":16,"max_tokens":2147483647}""");
        Assert.Equal(400, status);
        Assert.Equal("max_tokens", body.GetProperty("error").GetProperty("param").GetString());
        (status, body) = await fixture.Server.PostRawAsync("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"n":16,"max_completion_tokens":2147483647}""");
        Assert.Equal(400, status);
        Assert.Equal("max_completion_tokens", body.GetProperty("error").GetProperty("param").GetString());
    }

    [Theory]
    [InlineData("/v1/completions", "FFFFFFFFFFFFFFFFFFFF")]
    [InlineData("/v1/completions", "FFFFFFFF")]
    [InlineData("/tokenize", "FFFFFFFFFFFFFFFFFFFF")]
    [InlineData("/v1/chat/completions", "80000000")]
    [InlineData("/detokenize", "zz")]
    public async Task ChunkSizeThatOverflowsOrIsNotHex_Is400(string path, string size)
    {
        var head = $"POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked";
        var response = await RawHttp.SendAsync(fixture.Server.BaseAddress, head, Encoding.ASCII.GetBytes($"{size}\r\n{{\"prompt\":\"x\"}}\r\n0\r\n\r\n"));
        Assert.Equal(400, response.Status);
        Assert.Contains("could not be read", response.Body, StringComparison.Ordinal);
        using var ready = await fixture.Server.Http.GetAsync("/health/ready");
        Assert.Equal(System.Net.HttpStatusCode.OK, ready.StatusCode);
    }

    [Fact]
    public async Task Models_NameTheModel_NotItsFolder()
    {
        var text = await fixture.Server.Http.GetStringAsync("/v1/models");
        using var document = JsonDocument.Parse(text);
        var model = document.RootElement.GetProperty("data")[0];
        Assert.Equal(model.GetProperty("id").GetString(), model.GetProperty("root").GetString());
        Assert.DoesNotContain(Path.GetFullPath(RepositoryPaths.DefaultModel).TrimEnd('/'), text, StringComparison.Ordinal);
        Assert.DoesNotContain("/models/", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReservedChatTemplateKwarg_SaysSoInTheApisTerms()
    {
        var (status, body) = await fixture.Server.PostRawAsync("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"chat_template_kwargs":{"messages":[]},"max_tokens":1}""");
        Assert.Equal(400, status);
        var message = body.GetProperty("error").GetProperty("message").GetString()!;
        Assert.DoesNotContain("Parameter", message, StringComparison.Ordinal);
        Assert.DoesNotContain("extraKwargs", message, StringComparison.Ordinal);
        Assert.Contains("chat_template_kwargs", message, StringComparison.Ordinal);
    }
}
