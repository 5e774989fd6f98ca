using System.Net;
using System.Text;
using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// Graceful shutdown in process: once the host is stopping, readiness is false and new requests get 503 while a
/// request in flight streams to its end; with no time left, the request in flight ends with a clear error instead.
/// </summary>
public sealed class DrainTests
{
    // Long enough to outlast the checks made while it runs: 250 tokens took 0.6 s on an idle 2-core machine, so the
    // drain could end (and Kestrel stop listening) before the test's own requests.
    private const string LongStream = """{"prompt":"def fibonacci(n):","max_tokens":1200,"temperature":0,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}""";

    [Fact]
    public async Task Stopping_ReadinessFalse_NewRequestsGet503_InFlightFinishes()
    {
        await using var server = await TestServer.StartAsync(RepositoryPaths.DefaultModel, "--shutdown-timeout", "60");
        using var stream = await OpenStreamAsync(server, LongStream);
        Assert.StartsWith("data: ", await ReadEventAsync(stream));

        var stopping = server.App.StopAsync();
        using (var ready = await server.Http.GetAsync("/health/ready"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            Assert.Equal("draining", await ready.Content.ReadAsStringAsync());
        }

        using (var live = await server.Http.GetAsync("/health/live"))
        {
            Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        }

        var (status, body) = await server.PostRawAsync("/v1/completions", """{"prompt":"x","max_tokens":2}""");
        Assert.Equal(503, status);
        Assert.Equal("not_ready", body.GetProperty("error").GetProperty("code").GetString());
        Assert.False(stopping.IsCompleted);

        // The stream in flight runs to its end.
        var events = new List<string>();
        while (await ReadEventAsync(stream) is { } line)
        {
            events.Add(line);
        }

        Assert.Equal("data: [DONE]", events[^1]);
        var usage = JsonDocument.Parse(events[^2]["data: ".Length..]).RootElement.GetProperty("usage");
        Assert.Equal(1200, usage.GetProperty("completion_tokens").GetInt32());
        await stopping.WaitAsync(TimeSpan.FromSeconds(90));
    }

    [Fact]
    public async Task ShutdownTimeoutReached_CancelsInFlightWithClearError()
    {
        await using var server = await TestServer.StartAsync(RepositoryPaths.DefaultModel, "--shutdown-timeout", "0");
        using var stream = await OpenStreamAsync(server, LongStream.Replace("1200", "2000", StringComparison.Ordinal));
        Assert.StartsWith("data: ", await ReadEventAsync(stream));

        await server.App.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var events = new List<string>();
        while (await ReadEventAsync(stream) is { } line)
        {
            events.Add(line);
        }

        Assert.Equal("data: [DONE]", events[^1]);
        var error = JsonDocument.Parse(events[^2]["data: ".Length..]).RootElement.GetProperty("error");
        Assert.Equal("The server is shutting down.", error.GetProperty("message").GetString());
        Assert.Equal("cancelled", error.GetProperty("code").GetString());
    }

    private static async Task<StreamReader> OpenStreamAsync(TestServer server, string body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        return new StreamReader(await response.Content.ReadAsStreamAsync());
    }

    /// <summary>The next non-empty SSE line, or null at the end of the stream.</summary>
    private static async Task<string?> ReadEventAsync(StreamReader reader)
    {
        while (await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)) is { } line)
        {
            if (line.Length > 0)
            {
                return line;
            }
        }

        return null;
    }
}
