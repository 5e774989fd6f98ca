using InferenceServer.Hosting;
using InferenceServer.Observability;
using InferenceServer.Onnx.Runtime;
using Microsoft.Extensions.Configuration;

namespace InferenceServer.Tests.Hosting;

public sealed class ServerOptionsTests
{
    private static ServerOptions Read(params (string Key, string Value)[] values)
        => ServerOptions.FromConfiguration(new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build());

    [Theory]
    [InlineData(null, "auto")]
    [InlineData("fp32", "fp32")]
    [InlineData("fp16", "fp16")]
    [InlineData("bf16", "bf16")]
    [InlineData("int4", "int4")]
    public void DType_DefaultsToAuto(string? text, string expected)
        => Assert.Equal(expected, (text is null ? Read() : Read(("dtype", text))).DType);

    [Theory]
    [InlineData(null, null, 64)]
    [InlineData(null, "512", 256)]
    [InlineData("32", "512", 32)]
    [InlineData("100", "64", 64)]
    public void CudaGraphMaxBatch_Is256_CappedByMaxNumSeqs(string? cap, string? maxNumSeqs, int expected)
    {
        var values = new List<(string, string)>();
        if (cap is not null)
        {
            values.Add(("cuda-graph-max-batch", cap));
        }

        if (maxNumSeqs is not null)
        {
            values.Add(("max-num-seqs", maxNumSeqs));
        }

        Assert.Equal(expected, Read([.. values]).Session.CudaGraphMaxBatch);
    }

    [Fact]
    public void Deterministic_IsOffByDefault_AndTurnsPrefixCachingOff_AndAlignsPromptChunks()
    {
        var plain = Read();
        Assert.False(plain.Session.Deterministic);
        Assert.True(plain.Scheduler.EnablePrefixCaching);
        Assert.Equal(0, plain.Scheduler.PrefillChunkAlignment);
        var deterministic = Read(("deterministic", "true"));
        Assert.True(deterministic.Session.Deterministic);
        Assert.False(deterministic.Scheduler.EnablePrefixCaching);
        Assert.Equal(512, deterministic.Scheduler.PrefillChunkAlignment);
        Assert.Throws<FormatException>(() => Read(("deterministic", "maybe")));
        Assert.Throws<FormatException>(() => Read(("cuda-graph-max-batch", "0")));
    }

    [Theory]
    [InlineData(null, true)]
    [InlineData("true", true)]
    [InlineData("false", false)]
    public void CudaGraphs_OnUnlessTurnedOff(string? text, bool expected)
        => Assert.Equal(expected, (text is null ? Read() : Read(("cuda-graphs", text))).Session.CudaGraphs);

    [Theory]
    [InlineData(null, true)]
    [InlineData("true", true)]
    [InlineData("false", false)]
    public void OnnxGraphRewrite_OnUnlessTurnedOff(string? text, bool expected)
        => Assert.Equal(expected, (text is null ? Read() : Read(("onnx-graph-rewrite", text))).Session.RewriteGraph);

    [Theory]
    [InlineData("1048576", 1048576d)]
    [InlineData("512m", 512d * 1024 * 1024)]
    [InlineData("2G", 2d * 1024 * 1024 * 1024)]
    [InlineData("64k", 65536d)]
    [InlineData("0.25", 0.25)]
    public void KvCacheMemory_AcceptsBytesSuffixesAndFractions(string text, double expected)
        => Assert.Equal(expected, Read(("kv-cache-memory", text)).Scheduler.KvCacheMemory);

    [Theory]
    [InlineData(null, 0d)]
    [InlineData("0", 0d)]
    [InlineData("2g", 2d * 1024 * 1024 * 1024)]
    [InlineData("0.5", 0.5)]
    public void HostKvCacheMemory_OffByDefault_AcceptsZeroBytesAndFractions(string? text, double expected)
        => Assert.Equal(expected, (text is null ? Read() : Read(("host-kv-cache-memory", text))).Scheduler.HostKvCacheMemory);

    [Theory]
    [InlineData("host-kv-cache-memory", "-1")]
    [InlineData("host-kv-cache-memory", "lots")]
    [InlineData("kv-cache-memory", "-1")]
    [InlineData("kv-cache-memory", "lots")]
    [InlineData("max-num-seqs", "0")]
    [InlineData("block-size", "x")]
    [InlineData("threads", "-1")]
    [InlineData("max-queued-tokens", "0")]
    [InlineData("max-request-timeout", "0")]
    [InlineData("max-request-timeout", "NaN")]
    [InlineData("max-request-timeout", "1e9")]
    [InlineData("fault-cooldown", "-5")]
    [InlineData("max-consecutive-step-failures", "0")]
    [InlineData("max-request-body-size", "big")]
    [InlineData("cuda-graphs", "sometimes")]
    [InlineData("onnx-graph-rewrite", "yes")]
    [InlineData("log-format", "xml")]
    [InlineData("log-requests", "maybe")]
    [InlineData("shutdown-timeout", "-5")]
    [InlineData("engine-stall-timeout", "0")]
    [InlineData("liveness-stall-timeout", "0")]
    [InlineData("liveness-stall-timeout", "5m")]
    [InlineData("dtype", "fp8")]
    [InlineData("dtype", "FP16")]
    public void BadValues_NameTheOption(string key, string value)
    {
        var ex = Assert.Throws<FormatException>(() => Read((key, value)));
        Assert.Contains("--" + key, ex.Message);
    }

    [Fact]
    public void ReliabilityOptions_HaveTheirDefaults_AndAreRead()
    {
        var defaults = Read();
        Assert.Equal(1024, defaults.Scheduler.MaxQueuedRequests);
        Assert.Equal(1L << 20, defaults.Scheduler.MaxQueuedTokens);
        Assert.Equal(3, defaults.Scheduler.MaxConsecutiveStepFailures);
        Assert.Equal(TimeSpan.FromSeconds(30), defaults.Scheduler.FaultCooldown);
        Assert.Equal(TimeSpan.FromSeconds(600), defaults.Limits.MaxRequestTimeout);
        Assert.Equal(4L * 1024 * 1024, defaults.Limits.MaxRequestBodySize);

        var set = Read(("max-queued-tokens", "5000"), ("max-request-timeout", "2.5"), ("max-request-body-size", "64k"), ("max-consecutive-step-failures", "7"), ("fault-cooldown", "0.5"));
        Assert.Equal(5000, set.Scheduler.MaxQueuedTokens);
        Assert.Equal(TimeSpan.FromSeconds(2.5), set.Limits.MaxRequestTimeout);
        Assert.Equal(65536, set.Limits.MaxRequestBodySize);
        Assert.Equal(7, set.Scheduler.MaxConsecutiveStepFailures);
        Assert.Equal(TimeSpan.FromSeconds(0.5), set.Scheduler.FaultCooldown);
    }

    [Fact]
    public void OperationsOptions_HaveDefaults_AndAreRead()
    {
        var defaults = Read();
        Assert.Equal(LogFormat.Text, defaults.LogFormat);
        Assert.False(defaults.LogRequests);
        Assert.Equal(TimeSpan.FromSeconds(30), defaults.ShutdownTimeout);
        Assert.Equal(TimeSpan.FromSeconds(60), defaults.EngineStallTimeout);
        Assert.Equal(TimeSpan.FromSeconds(300), defaults.LivenessStallTimeout);

        var options = Read(("log-format", "JSON"), ("log-requests", "true"), ("shutdown-timeout", "0"), ("engine-stall-timeout", "5"), ("liveness-stall-timeout", "120"));
        Assert.Equal(LogFormat.Json, options.LogFormat);
        Assert.True(options.LogRequests);
        Assert.Equal(TimeSpan.Zero, options.ShutdownTimeout);
        Assert.Equal(TimeSpan.FromSeconds(5), options.EngineStallTimeout);
        Assert.Equal(TimeSpan.FromSeconds(120), options.LivenessStallTimeout);
    }

    [Fact]
    public void ModelAndName_AreRead()
    {
        var options = Read(("model", "/m"), ("served-model-name", "coder"));
        Assert.Equal("/m", options.Model);
        Assert.Equal("coder", options.ServedModelName);
    }

    [Fact]
    public void ServedModelNames_AreAllRead_FirstReported()
    {
        var options = Read(("served-model-name", "coder,alias"));
        Assert.Equal(["coder", "alias"], options.ServedModelNames);
        Assert.Equal("coder", options.ServedModelName);
    }

    [Fact]
    public void GpuMemoryUtilization_AndKvCacheMemory_AreExclusive()
    {
        Assert.Equal(0.9, Read(("gpu-memory-utilization", "0.9")).GpuMemoryUtilization);
        var error = Assert.Throws<FormatException>(() => Read(("gpu-memory-utilization", "0.9"), ("kv-cache-memory", "1g")));
        Assert.Contains("--gpu-memory-utilization", error.Message, StringComparison.Ordinal);
        Assert.Contains("--kv-cache-memory", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("gpu-memory-utilization", "1.5")]
    [InlineData("gpu-memory-utilization", "0")]
    [InlineData("max-model-len", "0")]
    [InlineData("enable-prefix-caching", "perhaps")]
    public void NewOptions_BadValues_NameTheOption(string key, string value)
    {
        var ex = Assert.Throws<FormatException>(() => Read((key, value)));
        Assert.Contains("--" + key, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SessionOptions_DefaultToAllCoresWithoutSpinning_AndAreRead()
    {
        var defaults = Read();
        Assert.Equal(0, defaults.Session.IntraOpThreads);
        Assert.Equal(OnnxSpinning.Never, defaults.Session.Spinning);
        var set = Read(("threads", "1"), ("onnx-spinning", "always"));
        Assert.Equal(1, set.Session.IntraOpThreads);
        Assert.Equal(OnnxSpinning.Always, set.Session.Spinning);
    }

    [Theory]
    [InlineData("step", OnnxSpinning.Step)]
    [InlineData("ALWAYS", OnnxSpinning.Always)]
    [InlineData("never", OnnxSpinning.Never)]
    [InlineData("true", OnnxSpinning.Always)]
    [InlineData("false", OnnxSpinning.Never)]
    public void OnnxSpinning_IsRead(string text, OnnxSpinning expected)
        => Assert.Equal(expected, Read(("onnx-spinning", text)).Session.Spinning);

    [Fact]
    public void ServerRuntimeConfig_KeepsIdleThreadPoolWorkersFromSpinning()
    {
        // The server's own runtimeconfig.json (built next to this test's binary from the server project) carries it.
        using var config = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "InferenceServer.runtimeconfig.json")));
        var properties = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
        Assert.Equal(0, properties.GetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit").GetInt32());
    }

    [Theory]
    [InlineData(null, AttentionOverlap.Auto)]
    [InlineData("on", AttentionOverlap.On)]
    [InlineData("OFF", AttentionOverlap.Off)]
    [InlineData("true", AttentionOverlap.On)]
    [InlineData("false", AttentionOverlap.Off)]
    [InlineData("auto", AttentionOverlap.Auto)]
    public void AttentionOverlap_IsRead(string? text, AttentionOverlap expected)
        => Assert.Equal(expected, (text is null ? Read() : Read(("attention-overlap", text))).Session.AttentionOverlap);

    [Theory]
    [InlineData(null, null)]
    [InlineData("auto", null)]
    [InlineData("bfloat16", KvElementType.BFloat16)]
    [InlineData("BF16", KvElementType.BFloat16)]
    [InlineData("float16", KvElementType.Float16)]
    [InlineData("half", KvElementType.Float16)]
    [InlineData("fp32", KvElementType.Float32)]
    public void KvCacheDtype_IsRead_WithCpuAttention(string? text, KvElementType? expected)
    {
        var options = text is null ? Read(("attention-device", "cpu")) : Read(("attention-device", "cpu,cpu"), ("kv-cache-dtype", text));
        Assert.Equal(expected, options.Session.HostKvElementType);
    }

    [Theory]
    [InlineData("fp8", null, "not supported")]
    [InlineData("fp8_e4m3", "cpu", "not supported")]
    [InlineData("int8", "cpu", "must be auto, float32, float16 or bfloat16")]
    [InlineData("bfloat16", null, "--attention-device cpu")]
    [InlineData("float16", "cuda:0", "--attention-device cpu")]
    [InlineData("float16", "cpu,cuda:0", "--attention-device cpu")]
    public void KvCacheDtype_RefusesFp8_AndAnythingButCpuPools(string text, string? devices, string expected)
    {
        var error = Assert.Throws<FormatException>(() => devices is null
            ? Read(("kv-cache-dtype", text))
            : Read(("kv-cache-dtype", text), ("attention-device", devices)));
        Assert.Contains("--kv-cache-dtype", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("auto", null)]
    [InlineData("host", false)]
    [InlineData("compute", true)]
    [InlineData("COMPUTE", true)]
    public void PrefillAttention_IsRead_WithCpuAttention(string? text, bool? expected)
    {
        var options = text is null ? Read(("attention-device", "cpu")) : Read(("attention-device", "cpu,cpu"), ("prefill-attention", text));
        Assert.Equal(expected, options.Session.PrefillAttentionOnCompute);
        Assert.Equal(128, options.Session.PrefillAttentionMinTokens);
        Assert.Equal(512, Read(("attention-device", "cpu"), ("prefill-attention", "compute"), ("prefill-attention-min-tokens", "512")).Session.PrefillAttentionMinTokens);
    }

    [Theory]
    [InlineData("gpu", "cpu", "--prefill-attention must be auto, host or compute")]
    [InlineData("compute", null, "--attention-device cpu")]
    [InlineData("compute", "cuda:0", "--attention-device cpu")]
    [InlineData("compute", "cpu,cuda:0", "--attention-device cpu")]
    public void PrefillAttention_RefusesOtherValues_AndAnythingButCpuAttention(string text, string? devices, string expected)
    {
        var error = Assert.Throws<FormatException>(() => devices is null
            ? Read(("prefill-attention", text))
            : Read(("prefill-attention", text), ("attention-device", devices)));
        Assert.Contains("--prefill-attention", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("auto", null)]
    [InlineData("AUTO", null)]
    [InlineData("true", true)]
    [InlineData("false", false)]
    public void SplitOneStream_IsAutoUnlessGiven(string? text, bool? expected)
    {
        var options = text is null ? Read(("attention-device", "cuda:0")) : Read(("attention-device", "cuda:0"), ("split-one-stream", text));
        Assert.Equal(expected, options.Session.SplitOneStream);
        var error = Assert.Throws<FormatException>(() => Read(("split-one-stream", "sometimes")));
        Assert.Contains("--split-one-stream must be true, false or auto", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("auto", null)]
    [InlineData("true", true)]
    [InlineData("false", false)]
    public void WarmUp_IsAutoUnlessGiven(string? text, bool? expected)
    {
        var options = text is null ? Read() : Read(("warmup", text));
        Assert.Equal(expected, options.Scheduler.WarmUp);
        var error = Assert.Throws<FormatException>(() => Read(("warmup", "later")));
        Assert.Contains("--warmup must be true, false or auto", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AttentionOverlap_RejectsOtherValues()
    {
        var error = Assert.Throws<FormatException>(() => Read(("attention-overlap", "sometimes")));
        Assert.Contains("--attention-overlap must be auto, on or off", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OnnxSpinning_RejectsOtherValues()
    {
        var error = Assert.Throws<FormatException>(() => Read(("onnx-spinning", "sometimes")));
        Assert.Contains("never, step or always", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DefaultModel_IsFoundFromTheTestBinary()
        => Assert.True(File.Exists(Path.Combine(ServerProgram.FindDefaultModel(), "model.onnx")));

    [Theory]
    [InlineData(new string[0], new string[0])]
    [InlineData(new[] { "--attention-device", "cpu" }, new[] { "cpu" })]
    [InlineData(new[] { "--attention-device", "cpu", "--attention-device", "CPU" }, new[] { "cpu", "cpu" })]
    [InlineData(new[] { "--attention-device=cpu,cpu", "--attention-device", "cpu" }, new[] { "cpu", "cpu", "cpu" })]
    public void AttentionDevice_RepeatableAndCommaSeparated_InOrder(string[] args, string[] expected)
    {
        var configuration = new ConfigurationBuilder().AddCommandLine(InferenceServer.Hosting.CommandLine.ServerCommandLine.Parse(args).ToConfigurationArgs()).Build();
        Assert.Equal(expected, ServerOptions.FromConfiguration(configuration).Session.AttentionDevices);
    }

    [Fact]
    public void AttentionDevice_FromOneSetting_CommaSeparated()
        => Assert.Equal(["cpu", "cpu"], Read(("attention-device", "cpu, cpu")).Session.AttentionDevices);

    [Theory]
    [InlineData("cuda:", "malformed")]
    [InlineData("cuda:x", "cuda")]
    [InlineData("gpu", "unknown")]
    public void AttentionDevice_Unavailable_IsAFormatErrorSayingWhat(string device, string expected)
    {
        var error = Assert.Throws<FormatException>(() => Read(("attention-device", device)));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }
}
