using System.Diagnostics;
using System.Text;
using System.Text.Json;
using InferenceServer.Engine.Diagnostics;
using InferenceServer.FunctionalTests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// A caller's W3C <c>traceparent</c> carries through the server: the HTTP span continues the caller's trace, and the
/// engine's queue, prefill and decode spans hang under it with the token counts the response reports.
/// </summary>
public sealed class TracingTests : IAsyncLifetime
{
    private readonly List<Activity> _spans = [];
    private TestServer _server = null!;

    public async Task InitializeAsync()
        => _server = await TestServer.StartAsync(
            RepositoryPaths.DefaultModel,
            builder => builder.Services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddInMemoryExporter(_spans)),
            "--served-model-name",
            "tracing-test");

    public Task DisposeAsync() => _server.DisposeAsync().AsTask();

    [Fact]
    public async Task Traceparent_IsHonoured_ByHttpAndEngineSpans()
    {
        var traceId = ActivityTraceId.CreateRandom();
        var callerSpanId = ActivitySpanId.CreateRandom();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("""{"prompt":"def fibonacci(n):","max_tokens":7,"temperature":0}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("traceparent", $"00-{traceId}-{callerSpanId}-01");
        request.Headers.Add("X-Request-Id", "trace-test-1");
        using var response = await _server.Http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        Assert.Equal("trace-test-1", response.Headers.GetValues("X-Request-Id").Single());
        var usage = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("usage");

        // The server span ends just after the response; wait for it (bounded).
        var deadline = DateTime.UtcNow.AddSeconds(10);
        Activity? server = null;
        while (server is null && DateTime.UtcNow < deadline)
        {
            lock (_spans)
            {
                server = _spans.FirstOrDefault(s => s.TraceId == traceId && s.Kind == ActivityKind.Server);
            }

            if (server is null)
            {
                await Task.Delay(20);
            }
        }

        Assert.NotNull(server);
        Assert.Equal(callerSpanId, server.ParentSpanId);

        List<Activity> engine;
        lock (_spans)
        {
            engine = _spans.Where(s => s.TraceId == traceId && s.Source.Name == EngineTelemetry.ActivitySourceName).ToList();
        }

        Assert.Equal(["queue", "prefill", "decode"], engine.OrderBy(s => s.StartTimeUtc).Select(s => s.OperationName));
        Assert.All(engine, s => Assert.Equal(server.SpanId, s.ParentSpanId));
        var queue = engine.Single(s => s.OperationName == "queue");
        var prefill = engine.Single(s => s.OperationName == "prefill");
        var decode = engine.Single(s => s.OperationName == "decode");
        Assert.True(queue.StartTimeUtc + queue.Duration <= prefill.StartTimeUtc + TimeSpan.FromMilliseconds(1));
        Assert.True(prefill.StartTimeUtc + prefill.Duration <= decode.StartTimeUtc + TimeSpan.FromMilliseconds(1));
        Assert.True(decode.StartTimeUtc + decode.Duration <= server.StartTimeUtc + server.Duration);
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32(), (int)prefill.GetTagItem("gen_ai.usage.input_tokens")!);
        Assert.Equal(usage.GetProperty("completion_tokens").GetInt32(), (int)decode.GetTagItem("gen_ai.usage.output_tokens")!);
        Assert.Equal("length", decode.GetTagItem("gen_ai.response.finish_reasons"));
    }
}
