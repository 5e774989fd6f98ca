using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Hosting;
using InferenceServer.Onnx.Runtime;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// Attention offloading (ADR 0005) end to end: the real server on loopback serves a checkpoint folder with
/// <c>--device cpu --attention-device cpu</c> (the split form built into the build cache, attention on CPU backends) and
/// returns transformers' greedy tokens over HTTP, one request at a time and 16 at once, with the KV cache in two pools
/// so that sequences span both, under preemption (a KV budget of one full-context sequence) and on prefix-cache hits;
/// with <c>--attention-overlap on</c> (ADR 0010: every step of two or more rows as two micro-batches) and off.
/// </summary>
[Collection(MetricsCollection.Name)]
public sealed class AttentionOffloadingTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("attention-offloading-").FullName;

    public void Dispose() => Directory.Delete(_work, recursive: true);

    [Theory]
    [InlineData("llama-gqa", "on")]
    [InlineData("llama-gqa", "off")]
    [InlineData("qwen2", "on")]
    [InlineData("qwen2", "off")]
    [InlineData("llama-pruned", "on")]
    [InlineData("llama-pruned", "off")]
    [InlineData("llama-moh", "on")]
    [InlineData("llama-moh", "off")]
    [InlineData("deepseek-v3-mla", "on")]
    [InlineData("deepseek-v3-mla", "off")]
    [InlineData("qwen2-moe", "on")]
    [InlineData("mixtral", "off")]
    public async Task CheckpointFolder_WithCpuAttention_ServesTheReferenceTokens_OneAtATimeAnd16AtOnce(string fixture, string overlap)
    {
        var name = $"offload-{fixture}-{overlap}";
        await using var server = await TestServer.StartAsync(CheckpointOnly(fixture), "--build-cache", Path.Combine(_work, "cache"), "--served-model-name", name,
            "--device", "cpu", "--attention-device", "cpu", "--attention-device", "cpu", "--attention-overlap", overlap);
        var references = ReferenceCase.Load(RepositoryPaths.Fixture(fixture));
        foreach (var reference in references)
        {
            Assert.Equal(reference.Greedy, await CompleteAsync(server, name, reference));
        }

        var concurrent = Enumerable.Range(0, 16).Select(i => references[i % references.Count]).ToList();
        var results = await Task.WhenAll(concurrent.Select(reference => CompleteAsync(server, name, reference)));
        for (var i = 0; i < concurrent.Count; i++)
        {
            Assert.Equal(concurrent[i].Greedy, results[i]);
        }

        // Where KV lives, in /v1/models and gRPC's GetModelInfo; attention time and offloaded bytes in /metrics.
        using var models = JsonDocument.Parse(await server.Http.GetStringAsync("/v1/models"));
        Assert.Equal(["cpu", "cpu"], models.RootElement.GetProperty("data")[0].GetProperty("kv_devices").EnumerateArray().Select(e => e.GetString()));
        var info = await server.Grpc!.GetModelInfoAsync(new InferenceServer.Grpc.V1.GetModelInfoRequest());
        Assert.Equal(["cpu", "cpu"], info.KvDevices);
        var metrics = PrometheusText.Parse(await server.Http.GetStringAsync("/metrics"));
        Assert.True(metrics.Sum("inference_attention_offload_bytes_total", name) > 0);
        Assert.Equal("histogram", metrics.Types["inference_attention_seconds"]);
        Assert.Contains(metrics.For("inference_attention_seconds_count", name), s => s.Labels.GetValueOrDefault("device") == "cpu" && s.Value > 0);

        // Placement by measured speed: the first pool held blocks for many windows of steps, so it has a measurement.
        Assert.Contains(metrics.For("inference_kv_pool_attention_per_block_seconds", name), s => s.Labels.GetValueOrDefault("pool") == "cpu:0" && s.Value > 0);

        // The overlap's steps (two micro-batches) and their busy times: the 16 at once had steps of several rows.
        var overlapped = metrics.For("inference_split_steps_total", name).Where(s => s.Labels.GetValueOrDefault("overlapped") == "true").Sum(s => s.Value);
        var sequential = metrics.For("inference_split_steps_total", name).Where(s => s.Labels.GetValueOrDefault("overlapped") == "false").Sum(s => s.Value);
        Assert.True(sequential > 0, "single-row steps run as one micro-batch");
        if (overlap == "on")
        {
            Assert.True(overlapped > 0, "no step ran as two micro-batches");
            Assert.True(metrics.For("inference_split_attention_busy_seconds_total", name).Where(s => s.Labels.GetValueOrDefault("overlapped") == "true").Sum(s => s.Value) > 0);
            Assert.True(metrics.For("inference_split_dense_busy_seconds_total", name).Where(s => s.Labels.GetValueOrDefault("overlapped") == "true").Sum(s => s.Value) > 0);
        }
        else
        {
            Assert.Equal(0, overlapped);
        }
    }

    [Fact]
    public async Task TightKvBudgetOverTwoPools_PreemptsAndHitsThePrefixCache_AndStillServesTheReferenceTokens()
    {
        // llama-gqa: 3 layers x 2 KV heads x 16 x (key + value) x 4 bytes = 768 bytes a token; 512 tokens of context are
        // 32 blocks of 16, the least the engine accepts: concurrent requests need more, so some are preempted.
        const string Name = "offload-tight";
        await using var server = await TestServer.StartAsync(CheckpointOnly("llama-gqa"), "--build-cache", Path.Combine(_work, "cache"), "--served-model-name", Name,
            "--device", "cpu", "--attention-device", "cpu,cpu", "--kv-cache-memory", (32 * 16 * 768).ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--attention-overlap", "on");
        Assert.Equal(32, server.Scheduler.TotalBlocks);
        var references = ReferenceCase.Load(RepositoryPaths.Fixture("llama-gqa"));
        var longest = references.OrderByDescending(r => r.Prompt.Length).First();

        // 100 tokens each (7 or 8 blocks): a few overlapping requests outgrow the 32 blocks, however the arrivals spread.
        var concurrent = Enumerable.Range(0, 16).Select(i => i % 2 == 0 ? longest : references[i % references.Count]).ToList();
        var results = await Task.WhenAll(concurrent.Select(reference => CompleteAsync(server, Name, reference, maxTokens: 100)));
        for (var i = 0; i < concurrent.Count; i++)
        {
            Assert.Equal(100, results[i].Length);
            Assert.Equal(concurrent[i].Greedy, results[i][..concurrent[i].Greedy.Length]);
        }

        // The longest prompt twice more, alone: the second finds its full block in the prefix cache.
        Assert.Equal(longest.Greedy, await CompleteAsync(server, Name, longest));
        var before = PrometheusText.Parse(await server.Http.GetStringAsync("/metrics")).Sum("vllm:prefix_cache_hits_total", Name);
        Assert.Equal(longest.Greedy, await CompleteAsync(server, Name, longest));
        var metrics = PrometheusText.Parse(await server.Http.GetStringAsync("/metrics"));
        Assert.True(metrics.Sum("vllm:num_preemptions_total", Name) > 0, "the tight budget preempted nothing");
        Assert.True(metrics.Sum("vllm:prefix_cache_hits_total", Name) >= before + 16, "the repeated prompt found no cached block");
    }

    [Theory]
    [InlineData("bfloat16", "bfloat16")]
    [InlineData("fp16", "float16")]
    public async Task KvCacheDtype_HalvesTheHostPools_AndStillServesTheReferenceTokens(string dtype, string name)
    {
        // 32 blocks of 16 tokens at llama-gqa's 768 fp32 KV bytes per token: 64 blocks at 384 bytes in 16-bit pools.
        const string Name = "offload-kv-dtype";
        await using var server = await TestServer.StartAsync(CheckpointOnly("llama-gqa"), "--build-cache", Path.Combine(_work, "cache"), "--served-model-name", Name,
            "--device", "cpu", "--attention-device", "cpu", "--kv-cache-memory", (32 * 16 * 768).ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--kv-cache-dtype", dtype);
        Assert.Equal(64, server.Scheduler.TotalBlocks);
        var info = await server.Grpc!.GetModelInfoAsync(new InferenceServer.Grpc.V1.GetModelInfoRequest());
        Assert.Equal(name, info.KvElementType);
        Assert.Equal(384UL, info.KvBytesPerToken);
        foreach (var reference in ReferenceCase.Load(RepositoryPaths.Fixture("llama-gqa")))
        {
            Assert.Equal(reference.Greedy, await CompleteAsync(server, Name, reference));
        }
    }

    [Fact]
    public async Task PrefillAttentionCompute_ServesTheReferenceTokens_AndRefusesALatentModel()
    {
        // Prompts attend over themselves on the compute device (here the CPU provider's GroupQueryAttention); the host pools
        // only store their KV, which every decode step then reads.
        const string Name = "offload-prefill-compute";
        await using (var server = await TestServer.StartAsync(CheckpointOnly("llama-gqa"), "--build-cache", Path.Combine(_work, "cache"), "--served-model-name", Name,
            "--device", "cpu", "--attention-device", "cpu,cpu", "--prefill-attention", "compute", "--prefill-attention-min-tokens", "1"))
        {
            var references = ReferenceCase.Load(RepositoryPaths.Fixture("llama-gqa"));
            var answers = await Task.WhenAll(references.Select(r => CompleteAsync(server, Name, r)));
            for (var i = 0; i < references.Count; i++)
            {
                Assert.Equal(references[i].Greedy, answers[i]);
            }
        }

        var error = Assert.Throws<StartupException>(() => ServerProgram.Build(["--model", CheckpointOnly("deepseek-v3-mla"), "--build-cache", Path.Combine(_work, "cache"),
            "--device", "cpu", "--attention-device", "cpu", "--prefill-attention", "compute"]));
        Assert.Contains("--prefill-attention compute", error.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// <c>--kv-cache-memory 8 blocks' bytes,40 blocks' bytes</c> with <c>--attention-device cpu,cpu</c>: one size per
    /// attention device, in order (a GPU pool and a larger host pool, on a GPU machine). The runner holds exactly those
    /// pools, sequences that outgrow the first spill into the second, and the tokens stay transformers'.
    /// </summary>
    [Fact]
    public async Task KvCacheMemoryPerDevice_SizesEachPool_AndServesTheReferenceTokens()
    {
        const string Name = "offload-pool-sizes";
        const int BlockBytes = 16 * 768; // llama-gqa: 3 layers x keys and values x 2 KV heads x 16 wide x fp32, 16 tokens a block
        await using var server = await TestServer.StartAsync(CheckpointOnly("llama-gqa"), "--build-cache", Path.Combine(_work, "cache"), "--served-model-name", Name,
            "--device", "cpu", "--attention-device", "cpu,cpu", "--kv-cache-memory", $"{8 * BlockBytes},{40 * BlockBytes}");
        var runner = server.Services.GetRequiredService<IModelRunner>();
        Assert.Equal([8, 40], SplitDecoderModel.PoolBlockCounts(runner));
        Assert.Equal(48, runner.BlockCount);
        var sizes = PrometheusText.Parse(await server.Http.GetStringAsync("/metrics")).For("inference_kv_blocks", Name).ToDictionary(s => s.Labels["pool"], s => s.Value);
        Assert.Equal(new Dictionary<string, double> { ["cpu:0"] = 8, ["cpu:1"] = 40 }, sizes);

        // Sixteen requests at once need more than the first pool's 8 blocks: the second holds the rest.
        var references = ReferenceCase.Load(RepositoryPaths.Fixture("llama-gqa"));
        var concurrent = Enumerable.Range(0, 16).Select(i => references[i % references.Count]).ToList();
        var answers = await Task.WhenAll(concurrent.Select(r => CompleteAsync(server, Name, r)));
        for (var i = 0; i < concurrent.Count; i++)
        {
            Assert.Equal(concurrent[i].Greedy, answers[i]);
        }

        // Sizes that do not match the devices, or a fused model, stop the server saying so.
        var error = Assert.Throws<StartupException>(() => ServerProgram.Build(["--model", CheckpointOnly("llama-gqa"), "--build-cache", Path.Combine(_work, "cache"),
            "--device", "cpu", "--attention-device", "cpu,cpu", "--kv-cache-memory", "4m,4m,4m"]));
        Assert.Contains("3 sizes for 2 attention devices", error.Message, StringComparison.Ordinal);
        error = Assert.Throws<StartupException>(() => ServerProgram.Build(["--model", RepositoryPaths.Fixture("llama-gqa"), "--device", "cpu", "--kv-cache-memory", "4m,4m"]));
        Assert.Contains("runs fused (one KV pool)", error.Message, StringComparison.Ordinal);
        error = Assert.Throws<StartupException>(() => ServerProgram.Build(["--model", CheckpointOnly("llama-gqa"), "--build-cache", Path.Combine(_work, "cache"),
            "--device", "cpu", "--attention-device", "cpu,cpu", "--kv-cache-memory", "4m,lots"]));
        Assert.Contains("or one per --attention-device separated by commas, not '4m,lots'", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cuda:9", "no such CUDA device")]
    [InlineData("cpu,cuda:0,cuda:0", "at most one cuda:N")]
    [InlineData("tpu", "unknown")]
    public void AttentionDevice_NotAvailable_StopsTheServerSayingWhat(string device, string expected)
    {
        var error = Assert.Throws<StartupException>(() => ServerProgram.Build(["--model", CheckpointOnly("llama-gqa"), "--build-cache", Path.Combine(_work, "cache"), "--attention-device", device]));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OnnxExportWithoutCheckpoint_StopsTheServerSayingWhatToDo()
    {
        // The fixture's model.onnx is an Optimum export: there is no split form to serve.
        var error = Assert.Throws<StartupException>(() => ServerProgram.Build(["--model", RepositoryPaths.Fixture("qwen2"), "--device", "cpu", "--attention-device", "cpu"]));
        Assert.Contains("split", error.Message, StringComparison.Ordinal);
        Assert.Contains("checkpoint", error.Message, StringComparison.Ordinal);
    }

    private static async Task<int[]> CompleteAsync(TestServer server, string model, ReferenceCase reference, int? maxTokens = null)
    {
        var response = await server.CompleteAsync($$"""{"model":"{{model}}","prompt":[{{string.Join(",", reference.Prompt)}}],"max_tokens":{{maxTokens ?? reference.Greedy.Length}},"temperature":0,"ignore_eos":true,"return_token_ids":true}""");
        return [.. response.GetProperty("choices")[0].GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32())];
    }

    private string CheckpointOnly(string fixture) => RepositoryPaths.CheckpointCopy(fixture, _work);
}
