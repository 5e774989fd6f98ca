using System.Net;
using System.Reflection;
using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// What vLLM users probe and scrape, on a real server: <c>GET /health</c>, <c>GET /version</c>, and the <c>/metrics</c>
/// series vLLM publishes beyond the engine's counters (per-request token histograms, tokens per step, inference time,
/// the cache configuration) and the Prometheus <c>process_*</c> series, with values checked against the responses.
/// </summary>
[Collection(MetricsCollection.Name)]
public sealed class VllmProbesTests : IAsyncLifetime
{
    private const string Model = "vllm-probes-test";
    private TestServer _server = null!;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(RepositoryPaths.DefaultModel, "--served-model-name", Model);

    public Task DisposeAsync() => _server.DisposeAsync().AsTask();

    [Fact]
    public async Task Health_Is200WithAnEmptyBody_AndVersionIsTheServersVersion()
    {
        using var health = await _server.Http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal(string.Empty, await health.Content.ReadAsStringAsync());

        using var version = await _server.Http.GetAsync("/version");
        Assert.Equal(HttpStatusCode.OK, version.StatusCode);
        Assert.Equal("application/json", version.Content.Headers.ContentType!.MediaType);
        using var body = JsonDocument.Parse(await version.Content.ReadAsStringAsync());
        var expected = typeof(Hosting.ServerProgram).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;
        Assert.Equal(expected, body.RootElement.GetProperty("version").GetString());
        Assert.Single(body.RootElement.EnumerateObject());
    }

    [Fact]
    public async Task Metrics_HaveVllmsRequestStepAndCacheSeries_ThatAddUpToTheResponses_AndTheProcessSeries()
    {
        // Prompts shorter than one 16-token block: nothing is served from the prefix cache, so every prompt token is
        // computed once, in some step, and every generated token but the last is fed back in a later step.
        string[] bodies =
        [
            """{"prompt":"def fibonacci(n):","max_tokens":9,"temperature":0,"ignore_eos":true}""",
            """{"prompt":"class Foo:","max_tokens":5,"temperature":0,"ignore_eos":true,"n":2}""",
        ];
        var responses = await Task.WhenAll(bodies.Select(body => _server.CompleteAsync(body)));
        int prompt = 0, generated = 0, sequences = 0, fed = 0;
        foreach (var (response, n) in responses.Zip([1, 2]))
        {
            var usage = response.GetProperty("usage");
            var promptTokens = usage.GetProperty("prompt_tokens").GetInt32();
            var completionTokens = usage.GetProperty("completion_tokens").GetInt32();
            prompt += promptTokens * n;
            generated += completionTokens;
            sequences += n;
            fed += (promptTokens * n) + completionTokens - n;
        }

        using var scrape = await _server.Http.GetAsync("/metrics");
        var metrics = PrometheusText.Parse(await scrape.Content.ReadAsStringAsync());

        foreach (var family in new[] { "vllm:request_prompt_tokens", "vllm:request_generation_tokens", "vllm:iteration_tokens_total", "vllm:request_inference_time_seconds" })
        {
            Assert.Equal("histogram", metrics.Types[family]);
            Assert.Equal(metrics.Sum(family + "_count", Model), metrics.For(family + "_bucket", Model).Single(s => s.Labels["le"] == "+Inf").Value);
        }

        Assert.Equal(sequences, metrics.Sum("vllm:request_prompt_tokens_count", Model));
        Assert.Equal(prompt, metrics.Sum("vllm:request_prompt_tokens_sum", Model));
        Assert.Equal(generated, metrics.Sum("vllm:request_generation_tokens_sum", Model));
        Assert.Equal(sequences, metrics.Sum("vllm:request_inference_time_seconds_count", Model));
        Assert.True(metrics.Sum("vllm:request_inference_time_seconds_sum", Model) <= metrics.Sum("vllm:e2e_request_latency_seconds_sum", Model));
        Assert.Equal(fed, metrics.Sum("vllm:iteration_tokens_total_sum", Model));
        // 9 tokens of the first request need at least 9 steps; each step is one sample.
        Assert.InRange(metrics.Sum("vllm:iteration_tokens_total_count", Model), 9, fed);

        Assert.Equal("gauge", metrics.Types["vllm:cache_config_info"]);
        var cache = Assert.Single(metrics.For("vllm:cache_config_info", Model));
        Assert.Equal(1, cache.Value);
        Assert.Equal("16", cache.Labels["block_size"]);
        Assert.Equal(_server.Scheduler.TotalBlocks.ToString(System.Globalization.CultureInfo.InvariantCulture), cache.Labels["num_gpu_blocks"]);
        Assert.Equal("True", cache.Labels["enable_prefix_caching"]);

        Assert.Equal("counter", metrics.Types["process_cpu_seconds_total"]);
        double Process(string name) => Assert.Single(metrics.Samples, s => s.Name == name).Value;
        Assert.True(Process("process_cpu_seconds_total") > 0);
        Assert.InRange(Process("process_resident_memory_bytes"), 16 * 1024 * 1024, Process("process_virtual_memory_bytes"));
        var started = System.Diagnostics.Process.GetCurrentProcess().StartTime.ToUniversalTime();
        Assert.InRange(Process("process_start_time_seconds"), new DateTimeOffset(started).ToUnixTimeSeconds() - 1, DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        if (OperatingSystem.IsLinux())
        {
            Assert.InRange(Process("process_open_fds"), 3, Process("process_max_fds"));
        }
    }
}
