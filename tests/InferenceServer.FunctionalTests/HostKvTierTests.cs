using System.Globalization;
using System.Text;
using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// The host KV tier (ADR 0009, <c>--host-kv-cache-memory</c>) end to end: the real server on loopback, a KV budget small
/// enough to force preemption, on the dense path (the fixture's ONNX export on host pages) and the split path
/// (<c>--attention-device cpu,cpu</c>: two pools, sequences spanning both). Greedy tokens stay transformers' exactly while sequences are copied out and back;
/// evicted prefix blocks come back from the host tier; cancelled requests leave none of its blocks in use.
/// </summary>
[Collection(MetricsCollection.Name)]
public sealed class HostKvTierTests : IDisposable
{
    // llama-gqa: 768 bytes of KV a token; 34 blocks of 16 tokens on the device, 128 in the host tier.
    private const int TokenBytes = 768;
    // A 100-token prompt (7 blocks): its prefix comes back from the tier, and it runs beside the cancelled streams.
    private static readonly int[] Prompt = [.. Enumerable.Range(0, 100).Select(i => (i * 31 % 1000) + 3)];

    private readonly string _work = Directory.CreateTempSubdirectory("host-kv-tier-").FullName;

    public void Dispose() => Directory.Delete(_work, recursive: true);

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public async Task TightKvBudget_WithHostTier_SwapsPreemptedSequences_AndServesTheReferenceTokens(bool split, bool prefixCaching)
    {
        var name = $"tier-{(split ? "split" : "dense")}-{(prefixCaching ? "prefix" : "noprefix")}";
        await using var server = await StartAsync(split, name, prefixCaching);
        var references = ReferenceCase.Load(RepositoryPaths.Fixture("llama-gqa"));
        var longest = references.OrderByDescending(r => r.Prompt.Length).First();

        // 16 requests of 100 tokens (7 or 8 blocks each) outgrow the 34 blocks: some are preempted and swapped.
        var concurrent = Enumerable.Range(0, 16).Select(i => i % 2 == 0 ? longest : references[i % references.Count]).ToList();
        var results = await Task.WhenAll(concurrent.Select(reference => CompleteAsync(server, name, reference.Prompt, 100)));
        for (var i = 0; i < concurrent.Count; i++)
        {
            Assert.Equal(100, results[i].Length);
            Assert.Equal(concurrent[i].Greedy, results[i][..concurrent[i].Greedy.Length]);
        }

        var metrics = await MetricsAsync(server);
        Assert.True(metrics.Sum("vllm:num_preemptions_total", name) > 0, "the tight budget preempted nothing");
        if (!prefixCaching)
        {
            Assert.True(metrics.Sum("inference_kv_swapped_out_blocks_total", name) > 0, "no block was swapped out");
            Assert.True(metrics.Sum("inference_kv_swapped_in_blocks_total", name) > 0, "no block was swapped back in");
            Assert.True(metrics.Sum("inference_kv_copy_calls_seconds_total", name) > 0, "no time inside the copy calls was counted");
        }

        // Host runners copy out inside the call: their steps never wait for a queued copy (a CUDA runner's do, ADR 0009).
        Assert.Equal(0, Assert.Single(metrics.For("inference_kv_copy_out_wait_seconds_total", name)).Value);

        // With prefix caching a preempted sequence whose full blocks are all in the device prefix cache is not copied out
        // (ADR 0009: they go to the tier only if the pool reuses them first); HostKvTierSchedulerTests counts that case.

        // Per-pool usage: the device pool(s) and the host tier, idle now.
        await WaitIdleAsync(server);
        metrics = await MetricsAsync(server);
        var pools = metrics.For("inference_kv_blocks_used", name).ToList();
        Assert.Contains(pools, s => s.Labels.GetValueOrDefault("pool") == "host-tier" && s.Value == 0);
        Assert.Equal(split ? ["cpu:0", "cpu:1", "host-tier"] : ["host", "host-tier"], pools.Select(s => s.Labels.GetValueOrDefault("pool")).Order(StringComparer.Ordinal));
        Assert.All(pools, s => Assert.Equal(0, s.Value));
        Assert.Contains(metrics.For("vllm:cache_config_info", name), s => s.Labels.GetValueOrDefault("num_cpu_blocks") == "128");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EvictedPrefix_IsServedFromTheHostTier(bool split)
    {
        var name = split ? "tier-hit-split" : "tier-hit-dense";
        await using var server = await StartAsync(split, name, prefixCaching: true);
        var filler = Enumerable.Range(0, 450).Select(i => (i * 17 % 1000) + 5).ToArray();

        // The prompt, then a filler that takes every device block, so the prompt's cached blocks move to the host tier.
        var first = await CompleteAsync(server, name, Prompt, 12);
        await CompleteAsync(server, name, filler, 40);
        var before = await MetricsAsync(server);
        Assert.Equal(0, before.Sum("vllm:external_prefix_cache_hits_total", name));
        var again = await CompleteAsync(server, name, Prompt, 12);
        Assert.Equal(first, again);
        var after = await MetricsAsync(server);
        Assert.True(after.Sum("vllm:external_prefix_cache_hits_total", name) >= 16, "the host tier served no prefix block");
        Assert.True(after.Sum("vllm:external_prefix_cache_queries_total", name) >= after.Sum("vllm:external_prefix_cache_hits_total", name));
    }

    /// <summary>
    /// Streams cancelled while the budget forces preemption: the host tier keeps none of their blocks. Without prefix
    /// caching, where preempted sequences are copied out (with it, their blocks stay in the device cache: ADR 0009).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task CancelledPreemptedStreams_LeaveNoHostBlocks(bool split)
    {
        var name = split ? "tier-cancel-split" : "tier-cancel-dense";
        await using var server = await StartAsync(split, name, prefixCaching: false);
        using var cancel = new CancellationTokenSource();
        var streams = Enumerable.Range(0, 6).Select(i => StreamUntilCancelledAsync(server, name, i, cancel.Token)).ToList();
        var full = CompleteAsync(server, name, Prompt, 200);
        await WaitUntilAsync(() => server.Scheduler.HostTierUsedBlocks > 0, "no stream was swapped out");
        await cancel.CancelAsync();
        await Task.WhenAll(streams).WaitAsync(TimeSpan.FromSeconds(120));
        Assert.Equal(200, (await full.WaitAsync(TimeSpan.FromSeconds(120))).Length);
        await WaitIdleAsync(server);
        Assert.Equal(0, server.Scheduler.HostTierUsedBlocks);
        Assert.Equal(0, server.Scheduler.UsedBlocks);
    }

    private Task<TestServer> StartAsync(bool split, string name, bool prefixCaching)
    {
        List<string> args = ["--served-model-name", name, "--device", "cpu", "--kv-cache-memory", (34 * 16 * TokenBytes).ToString(CultureInfo.InvariantCulture),
            "--host-kv-cache-memory", (128 * 16 * TokenBytes).ToString(CultureInfo.InvariantCulture)];
        if (!prefixCaching)
        {
            args.Add("--no-enable-prefix-caching");
        }

        if (split)
        {
            // Two micro-batches every step (ADR 0010): swaps and host-tier hits with the overlap's lanes.
            args.AddRange(["--build-cache", Path.Combine(_work, "cache"), "--attention-device", "cpu,cpu", "--attention-overlap", "on"]);
            return TestServer.StartAsync(RepositoryPaths.CheckpointCopy("llama-gqa", _work), [.. args]);
        }

        return TestServer.StartAsync(RepositoryPaths.Fixture("llama-gqa"), [.. args]);
    }

    private static async Task<int[]> CompleteAsync(TestServer server, string model, int[] prompt, int maxTokens)
    {
        var response = await server.CompleteAsync($$"""{"model":"{{model}}","prompt":[{{string.Join(",", prompt)}}],"max_tokens":{{maxTokens}},"temperature":0,"ignore_eos":true,"return_token_ids":true}""");
        return [.. response.GetProperty("choices")[0].GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32())];
    }

    /// <summary>A long streamed request, read until <paramref name="cancel"/> fires (then the connection is dropped).</summary>
    private static async Task StreamUntilCancelledAsync(TestServer server, string model, int seed, CancellationToken cancel)
    {
        var prompt = string.Join(",", Enumerable.Range(0, 150).Select(i => ((i * (seed + 3)) % 1000) + 7));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent($$"""{"model":"{{model}}","prompt":[{{prompt}}],"max_tokens":300,"temperature":0,"ignore_eos":true,"stream":true}""", Encoding.UTF8, "application/json"),
        };
        try
        {
            using var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel);
            await using var body = await response.Content.ReadAsStreamAsync(cancel);
            var buffer = new byte[4096];
            while (await body.ReadAsync(buffer, cancel) > 0)
            {
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static async Task<PrometheusText> MetricsAsync(TestServer server) => PrometheusText.Parse(await server.Http.GetStringAsync("/metrics"));

    private static Task WaitIdleAsync(TestServer server)
        => WaitUntilAsync(() => server.Scheduler.ActiveRequests == 0 && server.Scheduler.UsedBlocks == 0, "the engine did not go idle");

    /// <summary>Polls <paramref name="condition"/> (engine state, no timing) for up to two minutes.</summary>
    private static async Task WaitUntilAsync(Func<bool> condition, string failure)
    {
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, failure);
            await Task.Delay(TimeSpan.FromMilliseconds(20));
        }
    }
}
