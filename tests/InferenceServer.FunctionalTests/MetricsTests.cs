using System.Net;
using System.Reflection;
using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// <c>/metrics</c> on a real server after real requests: vLLM's exact names and types, and values that add up to what
/// the responses returned (tokens counted = tokens in <c>usage</c>, one finished request per choice, histogram counts).
/// The server has its own model name, so servers of other test classes running at the same time do not count here.
/// Also what vLLM users probe and scrape beyond the engine's counters: <c>GET /health</c>, <c>GET /version</c>, the
/// per-request token histograms, tokens per step, inference time, the cache configuration and the <c>process_*</c> series.
/// </summary>
[Collection(MetricsCollection.Name)]
public sealed class MetricsTests : IAsyncLifetime
{
    private const string Model = "metrics-test";
    private TestServer _server = null!;

    public async Task InitializeAsync()
        => _server = await TestServer.StartAsync(RepositoryPaths.DefaultModel, "--served-model-name", Model, "--max-num-seqs", "2");

    public Task DisposeAsync() => _server.DisposeAsync().AsTask();

    private async Task<PrometheusText> ScrapeAsync()
    {
        using var response = await _server.Http.GetAsync("/metrics");
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain; version=0.0.4", response.Content.Headers.ContentType!.ToString());
        return PrometheusText.Parse(await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Metrics_HaveVllmNames_AndTokensAddUpToUsage()
    {
        // A prompt of more than two 16-token blocks, sent twice: the second finds its blocks in the prefix cache.
        var longPrompt = JsonSerializer.Serialize(string.Concat(Enumerable.Repeat("import numpy as np\nimport os\n", 8)));
        string[] bodies =
        [
            """{"prompt":"def fibonacci(n):","max_tokens":12,"temperature":0}""",
            $$"""{"prompt":{{longPrompt}},"max_tokens":5,"temperature":0}""",
            $$"""{"prompt":{{longPrompt}},"max_tokens":7,"temperature":0}""",
            """{"prompt":"class Foo:","max_tokens":9,"temperature":0.8,"seed":3,"n":2}""",
            """{"prompt":["def fibonacci(n):","x = 1\n"],"max_tokens":6,"temperature":0,"stop_token_ids":[432]}""",
        ];

        // The long prompt first, alone, so that its blocks are in the cache; then everything else at once against two
        // batch slots (so requests wait), scraped while it runs.
        var first = await _server.CompleteAsync(bodies[1]);
        var requests = bodies.Skip(2).Prepend(bodies[0]).Select(body => _server.CompleteAsync(body)).ToList();
        requests.Insert(1, Task.FromResult(first));
        var streamed = _server.StreamAsync("""{"prompt":"import sys\n","max_tokens":20,"temperature":0,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}""");
        var duringLoad = await ScrapeAsync();
        Assert.Contains(duringLoad.Samples, s => s.Name == "vllm:num_requests_running");
        var responses = await Task.WhenAll(requests);
        var events = await streamed;

        int promptTokens = 0, completionTokens = 0, sequences = 0, itlSamples = 0;
        var reasons = new Dictionary<string, int>();
        for (var i = 0; i < responses.Length; i++)
        {
            var usage = responses[i].GetProperty("usage");
            var choices = responses[i].GetProperty("choices").EnumerateArray().ToList();
            var n = JsonDocument.Parse(bodies[i]).RootElement.TryGetProperty("n", out var nElement) ? nElement.GetInt32() : 1;

            // usage counts a prompt once per request; the engine counts it once per choice, as vLLM does.
            promptTokens += usage.GetProperty("prompt_tokens").GetInt32() * n;
            completionTokens += usage.GetProperty("completion_tokens").GetInt32();
            sequences += choices.Count;
            foreach (var choice in choices)
            {
                var reason = choice.GetProperty("finish_reason").GetString()!;
                reasons[reason] = reasons.GetValueOrDefault(reason) + 1;
            }
        }

        var streamUsage = JsonDocument.Parse(events[^2]).RootElement.GetProperty("usage");
        promptTokens += streamUsage.GetProperty("prompt_tokens").GetInt32();
        completionTokens += streamUsage.GetProperty("completion_tokens").GetInt32();
        sequences++;
        reasons["length"] = reasons.GetValueOrDefault("length") + 1;
        Assert.Equal(20, streamUsage.GetProperty("completion_tokens").GetInt32());

        var metrics = await ScrapeAsync();
        Assert.Equal(promptTokens, metrics.Sum("vllm:prompt_tokens_total", Model));
        Assert.Equal(completionTokens, metrics.Sum("vllm:generation_tokens_total", Model));
        foreach (var (reason, count) in reasons)
        {
            Assert.Equal(count, metrics.For("vllm:request_success_total", Model).Single(s => s.Labels["finished_reason"] == reason).Value);
        }

        Assert.Equal(sequences, metrics.Sum("vllm:request_success_total", Model));
        Assert.Contains("stop", reasons.Keys);
        Assert.Contains("length", reasons.Keys);

        // Histograms: one observation per sequence; one inter-token gap per token after the first.
        foreach (var name in (string[])["vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds", "vllm:time_to_first_token_seconds"])
        {
            Assert.Equal("histogram", metrics.Types[name]);
            Assert.Equal(sequences, metrics.Sum(name + "_count", Model));
            AssertCumulativeBuckets(metrics, name);
        }

        itlSamples = completionTokens - sequences;
        Assert.Equal(itlSamples, metrics.Sum("vllm:inter_token_latency_seconds_count", Model));
        AssertCumulativeBuckets(metrics, "vllm:inter_token_latency_seconds");
        Assert.True(metrics.Sum("vllm:e2e_request_latency_seconds_sum", Model) >= metrics.Sum("vllm:time_to_first_token_seconds_sum", Model));

        // Gauges, idle again; the prefix cache found the repeated prompt's blocks.
        Assert.Equal("gauge", metrics.Types["vllm:num_requests_running"]);
        Assert.Equal(0, metrics.Sum("vllm:num_requests_running", Model));
        Assert.Equal(0, metrics.Sum("vllm:num_requests_waiting", Model));
        Assert.InRange(metrics.Sum("vllm:kv_cache_usage_perc", Model), 0, 1);
        Assert.Equal("counter", metrics.Types["vllm:prefix_cache_queries_total"]);
        var hits = metrics.Sum("vllm:prefix_cache_hits_total", Model);
        Assert.True(hits >= 32, $"prefix cache hits {hits}");
        Assert.True(metrics.Sum("vllm:prefix_cache_queries_total", Model) >= hits);

        // The runtime's and ASP.NET Core's own metrics are there too, under Prometheus' conventions.
        Assert.Contains(metrics.Samples, s => s.Name == "dotnet_gc_collections_total");
        Assert.Contains(metrics.Samples, s => s.Name == "http_server_request_duration_seconds_count");
    }

    [Fact]
    public async Task Metrics_DuringLoad_ShowWaitingAndRunningRequests()
    {
        // Two batch slots, six long requests: a scrape while they run sees both gauges above zero.
        var load = Enumerable.Range(0, 6)
            .Select(i => _server.CompleteAsync($$"""{"prompt":"def f{{i}}(x):","max_tokens":150,"temperature":0,"ignore_eos":true}"""))
            .ToList();
        double running = 0, waiting = 0;
        while (!load.All(t => t.IsCompleted) && (running < 2 || waiting < 1))
        {
            var metrics = await ScrapeAsync();
            running = Math.Max(running, metrics.Sum("vllm:num_requests_running", Model));
            waiting = Math.Max(waiting, metrics.Sum("vllm:num_requests_waiting", Model));
        }

        await Task.WhenAll(load);
        Assert.Equal(2, running);
        Assert.True(waiting >= 1, $"waiting {waiting}");
    }

    private static void AssertCumulativeBuckets(PrometheusText metrics, string name)
    {
        var buckets = metrics.For(name + "_bucket", Model).ToList();
        Assert.True(buckets.Count > 5);
        for (var i = 1; i < buckets.Count; i++)
        {
            Assert.True(buckets[i].Value >= buckets[i - 1].Value, $"{name} buckets are not cumulative");
        }

        Assert.Equal("+Inf", buckets[^1].Labels["le"]);
        Assert.Equal(metrics.Sum(name + "_count", Model), buckets[^1].Value);
    }

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

        // Every step's model time, by kind: as many samples as steps, the prompts' steps apart from the decode steps.
        Assert.Equal("histogram", metrics.Types["inference_step_seconds"]);
        Assert.Equal(metrics.Sum("vllm:iteration_tokens_total_count", Model), metrics.Sum("inference_step_seconds_count", Model));
        double Steps(string kind) => metrics.For("inference_step_seconds_count", Model).Where(x => x.Labels.GetValueOrDefault("kind") == kind).Sum(x => x.Value);
        // At most one prompt step per sequence: a sibling of n=2 computes its uncached tail after the shared prompt.
        Assert.InRange(Steps("prompt"), 1, sequences);
        // The rest decoded only (some of the first request's 8 decodes may share a step with the other's prompt).
        Assert.Equal(metrics.Sum("inference_step_seconds_count", Model), Steps("prompt") + Steps("decode"));
        Assert.InRange(Steps("decode"), 9 - 1 - sequences, fed);
        Assert.True(metrics.Sum("inference_step_seconds_sum", Model) > 0);

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
