using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// The real executable as a container runs it: JSON logs on stdout with one line per finished request carrying the
/// request id and the caller's trace id and no prompt text; SIGTERM under load lets every request in flight finish,
/// refuses new ones with 503, and exits 0.
/// </summary>
public sealed class ProcessLifecycleTests
{
    private const string Marker = "zebra_unicorn_marker";

    [Fact]
    public async Task JsonLogs_OneLinePerRequest_WithRequestIdAndTraceId_AndNoPromptText()
    {
        await using var server = await ServerProcess.StartAsync();
        var traceId = ActivityTraceId.CreateRandom();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent($$"""{"prompt":"def {{Marker}}(x):","max_tokens":6,"temperature":0}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("traceparent", $"00-{traceId}-{ActivitySpanId.CreateRandom()}-01");
        request.Headers.Add("X-Request-Id", "req-logs-1");
        using var response = await server.Http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        var usage = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("usage");

        await server.TerminateAsync();
        Assert.Equal(0, await server.WaitForExitAsync(TimeSpan.FromSeconds(60)));

        var finished = Assert.Single(server.EventsNamed("CompletionFinished"));
        Assert.Equal("req-logs-1", finished.GetProperty("RequestId").GetString());
        Assert.Equal(traceId.ToString(), finished.GetProperty("@tr").GetString());
        Assert.Equal("tiny-pycoder", finished.GetProperty("Model").GetString());
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32(), finished.GetProperty("PromptTokens").GetInt32());
        Assert.Equal(usage.GetProperty("completion_tokens").GetInt32(), finished.GetProperty("CompletionTokens").GetInt32());
        Assert.Equal("length", finished.GetProperty("FinishReason").GetString());
        Assert.Equal(200, finished.GetProperty("StatusCode").GetInt32());
        var ttft = finished.GetProperty("TtftMs").GetDouble();
        Assert.InRange(finished.GetProperty("QueueMs").GetDouble(), 0, ttft);
        Assert.InRange(ttft, 0.001, finished.GetProperty("TotalMs").GetDouble());
        Assert.DoesNotContain(server.Lines, line => line.Contains(Marker, StringComparison.Ordinal));
    }

    [Fact]
    public async Task JsonLogs_OneLinePerGrpcRequest()
    {
        int port;
        using (var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        }

        await using var server = await ServerProcess.StartAsync("--grpc-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--grpc-host", "127.0.0.1");
        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress($"http://127.0.0.1:{port}");
        var client = new InferenceServer.Grpc.V1.Inference.InferenceClient(channel);
        var result = await Grpc.GenerateResult.ReadAsync(client, new InferenceServer.Grpc.V1.GenerateRequest
        {
            RequestId = "grpc-log-1",
            Text = "def add(a, b):",
            Sampling = new InferenceServer.Grpc.V1.SamplingParameters { Temperature = 0 },
            Stop = new InferenceServer.Grpc.V1.StopConditions { MaxTokens = 4 },
        });
        Assert.Equal(4, result.TokenIds[0].Count);

        await server.TerminateAsync();
        Assert.Equal(0, await server.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        var finished = Assert.Single(server.EventsNamed("CompletionFinished"));
        Assert.Equal("grpc-log-1", finished.GetProperty("CompletionId").GetString());
        Assert.Equal(4, finished.GetProperty("CompletionTokens").GetInt32());
        Assert.Equal("length", finished.GetProperty("FinishReason").GetString());
        Assert.Equal(0, finished.GetProperty("StatusCode").GetInt32());
    }

    [Fact]
    public async Task LogRequests_LogsThePrompt()
    {
        await using var server = await ServerProcess.StartAsync("--log-requests");
        using var content = new StringContent($$"""{"prompt":"def {{Marker}}(x):","max_tokens":2}""", Encoding.UTF8, "application/json");
        using var response = await server.Http.PostAsync("/v1/completions", content);
        response.EnsureSuccessStatusCode();
        await server.TerminateAsync();
        Assert.Equal(0, await server.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        var prompt = Assert.Single(server.EventsNamed("CompletionPrompt"));
        Assert.Contains(Marker, prompt.GetProperty("Prompt").GetString());
    }

    [Fact]
    public async Task Sigterm_UnderLoad_InFlightFinish_NewRequestsGet503_ExitsZero()
    {
        await using var server = await ServerProcess.StartAsync("--shutdown-timeout", "60", "--max-num-seqs", "4");
        const int Tokens = 300;
        var body = $$"""{"prompt":"import os\n","max_tokens":{{Tokens}},"temperature":0,"ignore_eos":true}""";

        // Load: three streams (each has sent its first chunk) and three plain requests (in the engine) when SIGTERM lands.
        var streams = new List<(HttpResponseMessage Response, StreamReader Reader)>();
        for (var i = 0; i < 3; i++)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
            {
                Content = new StringContent(body.Replace("}", ""","stream":true}""", StringComparison.Ordinal), Encoding.UTF8, "application/json"),
            };
            var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            response.EnsureSuccessStatusCode();
            var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            Assert.StartsWith("data: ", await reader.ReadLineAsync());
            streams.Add((response, reader));
        }

        var plain = Enumerable.Range(0, 3).Select(_ => server.Http.PostAsync("/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"))).ToList();
        await WaitForAsync(async () => (await server.Http.GetStringAsync("/metrics")).Contains("vllm:num_requests_running{model_name=\"tiny-pycoder\"} 4", StringComparison.Ordinal)
            || (await server.Http.GetStringAsync("/metrics")).Contains("vllm:num_requests_waiting{model_name=\"tiny-pycoder\"} 2", StringComparison.Ordinal));

        await server.TerminateAsync();
        await WaitForAsync(async () =>
        {
            using var ready = await server.Http.GetAsync("/health/ready");
            return ready.StatusCode == HttpStatusCode.ServiceUnavailable;
        });
        using (var refused = await server.Http.PostAsync("/v1/completions", new StringContent("""{"prompt":"x","max_tokens":2}""", Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Equal("1", refused.Headers.RetryAfter!.ToString());
        }

        foreach (var response in await Task.WhenAll(plain))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var usage = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("usage");
            Assert.Equal(Tokens, usage.GetProperty("completion_tokens").GetInt32());
        }

        foreach (var (response, reader) in streams)
        {
            var chunks = 1;
            string? last = null;
            while (await reader.ReadLineAsync() is { } line)
            {
                if (line.StartsWith("data: {", StringComparison.Ordinal))
                {
                    chunks++;
                    Assert.DoesNotContain("\"error\"", line);
                }

                last = line.Length > 0 ? line : last;
            }

            Assert.Equal("data: [DONE]", last);
            Assert.Equal(Tokens + 1, chunks); // one chunk per token, then the final chunk with finish_reason
            reader.Dispose();
            response.Dispose();
        }

        Assert.Equal(0, await server.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Single(server.EventsNamed("DrainStarted"));
        Assert.Single(server.EventsNamed("DrainCompleted"));
        Assert.Equal(6, server.EventsNamed("CompletionFinished").Count(e => e.GetProperty("StatusCode").GetInt32() == 200));
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met within 30 s");
            await Task.Delay(10);
        }
    }
}
