using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using InferenceServer.FunctionalTests.Grpc;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Onnx.Runtime;
using InferenceServer.Grpc.V1;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Time.Testing;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// Admission (bounded queue, 429 before the body is read), context and body limits, deadlines, disconnects and model
/// faults, over the real HTTP server. A <see cref="ControlledRunner"/> around the real runner holds or fails forward
/// passes, and a <see cref="FakeTimeProvider"/> drives deadlines and the fault cooldown: nothing here waits on the clock.
/// </summary>
public sealed class ReliabilityTests
{
    private sealed record Started(TestServer Server, ControlledRunner Runner, FakeTimeProvider Time) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            Runner.Open();
            return Server.DisposeAsync();
        }
    }

    private static async Task<Started> StartAsync(params string[] args)
    {
        ControlledRunner? runner = null;
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var server = await TestServer.StartAsync(
            RepositoryPaths.DefaultModel,
            builder =>
            {
                builder.Services.Replace(ServiceDescriptor.Singleton<TimeProvider>(time));
                var inner = (IModelRunner)builder.Services.Single(d => d.ServiceType == typeof(IModelRunner)).ImplementationInstance!;
                runner = new ControlledRunner(inner);
                builder.Services.Replace(ServiceDescriptor.Singleton<IModelRunner>(runner));
            },
            args);
        _ = server.Scheduler;
        return new Started(server, runner ?? throw new InvalidOperationException("runner not created"), time);
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static string Ids(int count, int salt = 0) => "[" + string.Join(",", Enumerable.Range(0, count).Select(i => ((i * 31) + salt) % 4000 + 10)) + "]";

    private static async Task<(HttpStatusCode Status, JsonElement Error, HttpResponseMessage Response)> PostErrorAsync(HttpClient http, string path, HttpContent content, bool expectContinue = false)
    {
        // Expect: 100-continue lets the server refuse an oversized body before it is sent, as a well-behaved client does;
        // otherwise the refusal races the upload and the client may see its write fail instead of the 413.
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
        request.Headers.ExpectContinue = expectContinue;
        var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        using var document = JsonDocument.Parse(text);
        return (response.StatusCode, document.RootElement.GetProperty("error").Clone(), response);
    }

    [Fact]
    public async Task FullQueue_Is429WithRetryAfter_BeforeTheBodyIsRead_AndEveryAcceptedRequestIsAnswered()
    {
        await using var s = await StartAsync("--max-queued-requests", "1", "--max-num-seqs", "1");
        s.Runner.Close();
        var running = s.Server.Http.PostAsync("/v1/completions", Json("""{"prompt":"def a():","max_tokens":3,"temperature":0}"""));
        await s.Runner.WaitEnteredAsync();
        var queued = s.Server.Http.PostAsync("/v1/completions", Json("""{"prompt":"def b():","max_tokens":3,"temperature":0}"""));
        await Eventually.TrueAsync(() => s.Server.Scheduler.QueuedRequests == 1, "the second request queued");

        // Not even JSON: refused before the body is read, so before any parsing or tokenization.
        var (status, error, response) = await PostErrorAsync(s.Server.Http, "/v1/completions", Json("{not json"));
        Assert.Equal(HttpStatusCode.TooManyRequests, status);
        Assert.Equal("1", response.Headers.RetryAfter?.ToString());
        Assert.Equal("queue_full", error.GetProperty("code").GetString());
        Assert.Equal("rate_limit_error", error.GetProperty("type").GetString());
        var (chatStatus, _, _) = await PostErrorAsync(s.Server.Http, "/v1/chat/completions", Json("""{"messages":[]}"""));
        Assert.Equal(HttpStatusCode.TooManyRequests, chatStatus);

        // gRPC: RESOURCE_EXHAUSTED.
        var grpc = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(s.Server.Grpc!, new GenerateRequest { Text = "x", Stop = new StopConditions { MaxTokens = 1 } }));
        Assert.Equal(StatusCode.ResourceExhausted, grpc.StatusCode);

        s.Runner.Open();
        Assert.Equal(HttpStatusCode.OK, (await running).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await queued).StatusCode);
        await Eventually.TrueAsync(() => s.Server.Scheduler.ActiveRequests == 0 && s.Server.Scheduler.UsedBlocks == 0, "idle");
    }

    [Fact]
    public async Task QueuedPromptTokens_AreBounded_AfterTokenization_AllOrNothing()
    {
        await using var s = await StartAsync("--max-queued-tokens", "40", "--max-num-seqs", "1");
        s.Runner.Close();
        var running = s.Server.Http.PostAsync("/v1/completions", Json("""{"prompt":[11,12,13],"max_tokens":2}"""));
        await s.Runner.WaitEnteredAsync();
        var thirty = s.Server.Http.PostAsync("/v1/completions", Json($$"""{"prompt":{{Ids(30)}},"max_tokens":2}"""));
        await Eventually.TrueAsync(() => s.Server.Scheduler.QueuedTokens == 30, "30 prompt tokens queued");

        // 30 + 20 > 40: refused after tokenization, before submission; n = 2 of 5 tokens (10 in all) would also fit only
        // one choice, so it is refused whole; 5 tokens fit.
        var (status, error, _) = await PostErrorAsync(s.Server.Http, "/v1/completions", Json($$"""{"prompt":{{Ids(20)}},"max_tokens":2}"""));
        Assert.Equal(HttpStatusCode.TooManyRequests, status);
        Assert.Equal("queue_full", error.GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.TooManyRequests, (await PostErrorAsync(s.Server.Http, "/v1/completions", Json($$"""{"prompt":{{Ids(6)}},"max_tokens":2,"n":2}"""))).Status);
        Assert.Equal(30, s.Server.Scheduler.QueuedTokens);
        var five = s.Server.Http.PostAsync("/v1/completions", Json($$"""{"prompt":{{Ids(5)}},"max_tokens":2}"""));
        await Eventually.TrueAsync(() => s.Server.Scheduler.QueuedTokens == 35, "35 prompt tokens queued");

        s.Runner.Open();
        foreach (var accepted in new[] { running, thirty, five })
        {
            Assert.Equal(HttpStatusCode.OK, (await accepted).StatusCode);
        }

        await Eventually.TrueAsync(() => s.Server.Scheduler.QueuedTokens == 0 && s.Server.Scheduler.ActiveRequests == 0, "queue empty");
    }

    [Fact]
    public async Task ContextAndBodyLimits_AreClientErrorsThatGiveTheNumbers()
    {
        await using var s = await StartAsync();
        var (status, error, _) = await PostErrorAsync(s.Server.Http, "/v1/completions", Json($$"""{"prompt":{{Ids(2100)}}}"""));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("2048", error.GetProperty("message").GetString());
        Assert.Contains("2100", error.GetProperty("message").GetString());

        (status, error, _) = await PostErrorAsync(s.Server.Http, "/v1/completions", Json($$"""{"prompt":{{Ids(10)}},"max_tokens":2040}"""));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("max_tokens", error.GetProperty("param").GetString());
        Assert.Contains("2048", error.GetProperty("message").GetString());
        Assert.Contains("2050", error.GetProperty("message").GetString());

        // The default body limit is 4 MiB.
        var big = "{\"prompt\":\"" + new string('a', (4 * 1024 * 1024) + 16) + "\"}";
        (status, error, _) = await PostErrorAsync(s.Server.Http, "/v1/completions", Json(big), expectContinue: true);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Equal("request_too_large", error.GetProperty("code").GetString());
        Assert.Contains("4194304", error.GetProperty("message").GetString());

        // Without a Content-Length (chunked) too.
        using var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big)));
        chunked.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        request.Headers.ExpectContinue = true;
        using var answer = await s.Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, answer.StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await s.Server.Http.PostAsync("/v1/completions", Json("""{"prompt":"x = ","max_tokens":2}"""))).StatusCode);
    }

    [Fact]
    public async Task BodyLimit_IsConfigurable()
    {
        await using var s = await StartAsync("--max-request-body-size", "64k");
        var (status, error, _) = await PostErrorAsync(s.Server.Http, "/v1/completions", Json("{\"prompt\":\"" + new string('b', 70_000) + "\"}"), expectContinue: true);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Contains("65536", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Deadlines_TheSmallestOfFieldHeaderAndServerMaximum_EndTheRequestAndFreeItsBlocks()
    {
        await using var s = await StartAsync("--max-request-timeout", "50");
        var scheduler = s.Server.Scheduler;
        const string Long = "\"prompt\":\"def main():\",\"max_tokens\":2000,\"ignore_eos\":true";

        // The body's timeout.
        var fieldTimeout = PostErrorAsync(s.Server.Http, "/v1/completions", Json("{" + Long + ",\"timeout\":5}"));
        await Eventually.TrueAsync(() => scheduler.ActiveRequests == 1, "submitted");
        s.Time.Advance(TimeSpan.FromSeconds(4));
        Assert.False(fieldTimeout.IsCompleted);
        s.Time.Advance(TimeSpan.FromSeconds(2));
        var (status, error, _) = await fieldTimeout;
        Assert.Equal(HttpStatusCode.GatewayTimeout, status);
        Assert.Equal("timeout", error.GetProperty("code").GetString());
        Assert.Equal("timeout_error", error.GetProperty("type").GetString());
        Assert.Contains("5 s", error.GetProperty("message").GetString());
        await Eventually.TrueAsync(() => scheduler.ActiveRequests == 0 && scheduler.UsedBlocks == 0, "blocks freed");

        // The header, shorter than the field: a streamed request ends with an error event, then [DONE].
        using var streamed = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Json("{" + Long + ",\"timeout\":100,\"stream\":true}") };
        streamed.Headers.Add("X-Request-Timeout", "3");
        using var response = await s.Server.Http.SendAsync(streamed, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: {", await reader.ReadLineAsync());
        s.Time.Advance(TimeSpan.FromSeconds(3.5));
        var events = new List<string>();
        while (await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add(line[6..]);
            }
        }

        Assert.Equal("[DONE]", events[^1]);
        using (var last = JsonDocument.Parse(events[^2]))
        {
            Assert.Equal("timeout", last.RootElement.GetProperty("error").GetProperty("code").GetString());
            Assert.Contains("3 s", last.RootElement.GetProperty("error").GetProperty("message").GetString());
        }

        await Eventually.TrueAsync(() => scheduler.ActiveRequests == 0 && scheduler.UsedBlocks == 0, "blocks freed");

        // A short chat request (the default model has its own chat template) ends well within the server's maximum.
        using (var chat = await s.Server.Http.PostAsync("/v1/chat/completions", Json("""{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}""")))
        {
            Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        }

        // The server's maximum, when the request names none.
        var plain = PostErrorAsync(s.Server.Http, "/v1/completions", Json("{" + Long + "}"));
        await Eventually.TrueAsync(() => scheduler.ActiveRequests == 1, "submitted");
        s.Time.Advance(TimeSpan.FromSeconds(51));
        (status, error, _) = await plain;
        Assert.Equal(HttpStatusCode.GatewayTimeout, status);
        Assert.Contains("50 s", error.GetProperty("message").GetString());

        // Bad values are 400s.
        Assert.Equal("timeout", (await PostErrorAsync(s.Server.Http, "/v1/completions", Json("""{"prompt":"x","timeout":-1}"""))).Error.GetProperty("param").GetString());
        // A positive timeout too short to represent (a denormal, found by the overflow fuzz) is bad input, not a 504.
        var (tinyStatus, tinyError, _) = await PostErrorAsync(s.Server.Http, "/v1/chat/completions", Json("""{"messages":[{"role":"user","content":"hi"}],"timeout":4.9e-324}"""));
        Assert.Equal(HttpStatusCode.BadRequest, tinyStatus);
        Assert.Equal("timeout", tinyError.GetProperty("param").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, (await PostErrorAsync(s.Server.Http, "/v1/completions", Json("""{"prompt":"x","timeout":"soon"}"""))).Status);
        using var badHeader = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Json("""{"prompt":"x","max_tokens":1}""") };
        badHeader.Headers.Add("X-Request-Timeout", "NaN");
        using var badAnswer = await s.Server.Http.SendAsync(badHeader);
        Assert.Equal(HttpStatusCode.BadRequest, badAnswer.StatusCode);
        await Eventually.TrueAsync(() => scheduler.ActiveRequests == 0 && scheduler.UsedBlocks == 0, "blocks freed");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Disconnect_StopsTheGenerationAtTheNextIteration_AndReturnsTheBlocks(bool stream)
    {
        await using var s = await StartAsync();
        var scheduler = s.Server.Scheduler;
        var steps = scheduler.Steps;
        using var cts = new CancellationTokenSource();
        var body = Json($$"""{"prompt":"def main():","max_tokens":2000,"ignore_eos":true,"stream":{{(stream ? "true" : "false")}}}""");
        if (stream)
        {
            // A client that really goes away: by default HttpClient drains an abandoned response (up to 1 MiB for 2 s)
            // to reuse the connection, and a fast run finishes the 2000 tokens inside that window (CI saw it once).
            using var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = s.Server.BaseAddress };
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = body };
            using var streamed = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
            using var reader = new StreamReader(await streamed.Content.ReadAsStreamAsync(cts.Token));
            Assert.StartsWith("data: {", await reader.ReadLineAsync(cts.Token));
        }
        else
        {
            var pending = s.Server.Http.PostAsync("/v1/completions", body, cts.Token);
            await Eventually.TrueAsync(() => scheduler.ActiveRequests == 1 && scheduler.UsedBlocks > 0, "generating");
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
        }

        await cts.CancelAsync();
        await Eventually.TrueAsync(() => scheduler.ActiveRequests == 0 && scheduler.UsedBlocks == 0, "the abandoned generation stopped and freed its blocks");
        Assert.True(scheduler.Steps - steps < 1900, $"{scheduler.Steps - steps} steps: the generation ran on");
    }

    [Fact]
    public async Task ModelFaults_FailTheirBatchWith500_RepeatedFaultsMakeReadinessFalse_AndTheEngineRecovers()
    {
        await using var s = await StartAsync("--max-consecutive-step-failures", "2", "--fault-cooldown", "30");
        const string Request = """{"prompt":"def fibonacci(n):","max_tokens":6,"temperature":0}""";
        var reference = await s.Server.CompleteAsync(Request);

        s.Runner.FailNext = 1;
        var (status, error, _) = await PostErrorAsync(s.Server.Http, "/v1/completions", Json(Request));
        Assert.Equal(HttpStatusCode.InternalServerError, status);
        Assert.Equal("engine_error", error.GetProperty("code").GetString());
        Assert.Contains("InvalidOperationException: injected fault: device lost", error.GetProperty("message").GetString());
        var after = await s.Server.CompleteAsync(Request);
        Assert.Equal(reference.GetProperty("choices")[0].GetProperty("text").GetString(), after.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(HttpStatusCode.OK, (await s.Server.Http.GetAsync("/health/ready")).StatusCode);

        // Two failed steps in a row: not ready, and new work is refused at once with 503 (HTTP) / UNAVAILABLE (gRPC).
        s.Runner.FailNext = int.MaxValue;
        Assert.Equal(HttpStatusCode.InternalServerError, (await PostErrorAsync(s.Server.Http, "/v1/completions", Json(Request))).Status);
        Assert.Equal(HttpStatusCode.OK, (await s.Server.Http.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.InternalServerError, (await PostErrorAsync(s.Server.Http, "/v1/completions", Json(Request))).Status);
        Assert.False(s.Server.Scheduler.IsHealthy);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await s.Server.Http.GetAsync("/health/ready")).StatusCode);
        var (refused, refusal, refusedResponse) = await PostErrorAsync(s.Server.Http, "/v1/completions", Json(Request));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused);
        Assert.Equal("unavailable", refusal.GetProperty("code").GetString());
        Assert.NotNull(refusedResponse.Headers.RetryAfter);
        var grpc = await Assert.ThrowsAsync<RpcException>(() => GenerateResult.ReadAsync(s.Server.Grpc!, new GenerateRequest { Text = "x", Stop = new StopConditions { MaxTokens = 1 } }));
        Assert.Equal(StatusCode.Unavailable, grpc.StatusCode);

        // The fault clears; after the cooldown the next request probes the model, succeeds, and readiness returns.
        s.Runner.FailNext = 0;
        s.Time.Advance(TimeSpan.FromSeconds(31));
        using (var probe = await s.Server.Http.PostAsync("/v1/completions", Json(Request)))
        {
            Assert.True(probe.IsSuccessStatusCode, $"probe after the cooldown: {(int)probe.StatusCode} {await probe.Content.ReadAsStringAsync()} (healthy {s.Server.Scheduler.IsHealthy}, accepts work {s.Server.Scheduler.AcceptsWork})");
        }

        var healed = await s.Server.CompleteAsync(Request);
        Assert.Equal(reference.GetProperty("choices")[0].GetProperty("text").GetString(), healed.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(HttpStatusCode.OK, (await s.Server.Http.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(0, s.Server.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task BurstAfterAnIdleSpell_IsServed_NotRefusedAsAStalledEngine()
    {
        // An idle engine is not a stalled one: the requests of a burst that arrive before the loop wakes for the first
        // one used to find "work, and no progress for as long as the server had been idle" and got 503 "engine stalled".
        await using var s = await StartAsync("--engine-stall-timeout", "60");
        s.Time.Advance(TimeSpan.FromMinutes(10));
        var burst = Enumerable.Range(0, 16).Select(i => s.Server.Http.PostAsync(
            "/v1/completions", Json($$"""{"prompt":{{Ids(4, i)}},"max_tokens":2,"temperature":0}"""))).ToArray();
        var responses = await Task.WhenAll(burst);
        var refused = new List<string>();
        foreach (var response in responses)
        {
            if (response.StatusCode != HttpStatusCode.OK)
            {
                refused.Add($"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }

            response.Dispose();
        }

        Assert.Empty(refused);
    }

    [Fact]
    public async Task StalledEngine_FailsReadinessAfterTheStallTimeout_AndLivenessAfterTheLivenessTimeout_ThenRecovers()
    {
        await using var s = await StartAsync("--engine-stall-timeout", "60", "--liveness-stall-timeout", "300");
        async Task<(HttpStatusCode Status, string Body)> ProbeAsync(string path)
        {
            using var response = await s.Server.Http.GetAsync(path);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        Assert.Equal((HttpStatusCode.OK, "live"), await ProbeAsync("/health/live"));
        Assert.Equal(HttpStatusCode.OK, (await ProbeAsync("/health")).Status);

        // A forward pass that never returns, as a hung device call would.
        s.Runner.Close();
        var held = s.Server.Http.PostAsync("/v1/completions", Json("""{"prompt":"def a():","max_tokens":3,"temperature":0}"""));
        await s.Runner.WaitEnteredAsync();

        // Past the readiness bound: out of rotation (and vLLM's /health fails), but not restarted yet.
        s.Time.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal((HttpStatusCode.ServiceUnavailable, "engine stalled"), await ProbeAsync("/health/ready"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await ProbeAsync("/health")).Status);
        Assert.Equal((HttpStatusCode.OK, "live"), await ProbeAsync("/health/live"));

        // Past the liveness bound: the orchestrator restarts it.
        s.Time.Advance(TimeSpan.FromSeconds(240));
        var (liveStatus, liveBody) = await ProbeAsync("/health/live");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, liveStatus);
        Assert.StartsWith("engine stalled: no progress for 301 s with 1 request(s) in flight", liveBody, StringComparison.Ordinal);

        // The pass returns: the request finishes and every probe is healthy again.
        s.Runner.Open();
        Assert.Equal(HttpStatusCode.OK, (await held).StatusCode);
        await Eventually.TrueAsync(() => s.Server.Scheduler.ActiveRequests == 0, "idle");
        Assert.Equal((HttpStatusCode.OK, "live"), await ProbeAsync("/health/live"));
        Assert.Equal((HttpStatusCode.OK, "ready"), await ProbeAsync("/health/ready"));
        Assert.Equal(HttpStatusCode.OK, (await ProbeAsync("/health")).Status);
    }
}
