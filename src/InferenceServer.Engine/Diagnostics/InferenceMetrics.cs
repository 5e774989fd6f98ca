// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Runtime.CompilerServices;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Observation;

namespace InferenceServer.Engine.Diagnostics;

/// <summary>
/// The engine's metrics, named and meant as vLLM's so that existing dashboards and autoscalers work unchanged:
/// gauges for running and waiting requests and KV-cache usage, counters for tokens, finished requests, prefix-cache
/// queries and hits, and histograms (vLLM's buckets) for time to first token, inter-token latency, end-to-end latency
/// and queue time, per-request prompt and generation tokens, tokens per engine step, and the cache configuration
/// (<c>vllm:cache_config_info</c>). Every measurement carries vLLM's <c>model_name</c> label. Instrument names are vLLM's Prometheus
/// names without the suffix the exposition adds (<c>_total</c> on counters; histograms already end in their unit).
/// </summary>
public sealed class InferenceMetrics : InferenceServer.Onnx.Attention.IAttentionObserver, IEngineObserver
{
    /// <summary>The meter's name, to enable in OpenTelemetry (<c>AddMeter</c>).</summary>
    public const string MeterName = "InferenceServer";

    private static readonly double[] TimeToFirstTokenBuckets =
        [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];

    private static readonly double[] InterTokenBuckets =
        [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];

    private static readonly double[] RequestLatencyBuckets =
        [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0];

    // vLLM's build_1_2_5_buckets(max_model_len) for the per-request token histograms, to 100k tokens.
    private static readonly double[] RequestTokenBuckets =
        [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];

    // Model time per engine step: a captured decode step takes a millisecond or two, a long prefill chunk up to seconds.
    private static readonly double[] StepBuckets =
        [0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0];

    private static readonly KeyValuePair<string, object?> DecodeStep = new("kind", "decode");
    private static readonly KeyValuePair<string, object?> PromptStep = new("kind", "prompt");

    // vLLM's buckets of vllm:iteration_tokens_total (tokens per engine step).
    private static readonly double[] IterationTokenBuckets = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];

    private readonly Counter<long> _promptTokens;
    private readonly Counter<long> _generationTokens;
    private readonly Counter<long> _requestSuccess;
    private readonly Histogram<double> _timeToFirstToken;
    private readonly Histogram<double> _interTokenLatency;
    private readonly Histogram<double> _e2eLatency;
    private readonly Histogram<double> _queueTime;
    private readonly Histogram<double> _prefillTime;
    private readonly Histogram<double> _decodeTime;
    private readonly Histogram<double> _inferenceTime;
    private readonly Histogram<long> _requestPromptTokens;
    private readonly Histogram<long> _requestGenerationTokens;
    private readonly Histogram<long> _iterationTokens;
    private readonly Counter<long> _attentionOffloadBytes;
    private readonly Histogram<double> _attentionTime;
    private readonly Histogram<double> _stepTime;
    private readonly Histogram<double> _kvLoadWait;
    private readonly Counter<long> _splitSteps;
    private readonly Counter<double> _splitStepTime;
    private readonly Counter<double> _splitDenseBusy;
    private readonly Counter<double> _splitAttentionBusy;
    private IEngineGauges? _engine;
    private KeyValuePair<string, object?> _model = new("model_name", string.Empty);

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/>.</summary>
    public InferenceMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(MeterName);
        meter.CreateObservableGauge("vllm:num_requests_running", ObserveRunning, "{request}", "Number of requests in model execution batches.");
        meter.CreateObservableGauge("vllm:num_requests_waiting", ObserveWaiting, "{request}", "Number of requests waiting to be processed.");
        meter.CreateObservableGauge("vllm:kv_cache_usage_perc", ObserveKvUsage, null, "KV-cache usage. 1 means 100 percent usage.");
        meter.CreateObservableCounter("vllm:prefix_cache_queries", ObservePrefixQueries, "{token}", "Prefix cache queries, in terms of number of queried tokens.");
        meter.CreateObservableCounter("vllm:prefix_cache_hits", ObservePrefixHits, "{token}", "Prefix cache hits, in terms of number of cached tokens.");
        meter.CreateObservableCounter("vllm:num_preemptions", ObservePreemptions, "{preemption}", "Cumulative number of preemptions from the engine.");
        _promptTokens = meter.CreateCounter<long>("vllm:prompt_tokens", "{token}", "Number of prefill tokens processed (each choice of a request counts its prompt).");
        _generationTokens = meter.CreateCounter<long>("vllm:generation_tokens", "{token}", "Number of generation tokens processed.");
        _requestSuccess = meter.CreateCounter<long>("vllm:request_success", "{request}", "Count of finished requests, by finished_reason (stop, length, abort, error).");
        _timeToFirstToken = CreateSeconds(meter, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TimeToFirstTokenBuckets);
        _interTokenLatency = CreateSeconds(meter, "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", InterTokenBuckets);
        _e2eLatency = CreateSeconds(meter, "vllm:e2e_request_latency_seconds", "Histogram of end-to-end request latency in seconds.", RequestLatencyBuckets);
        _queueTime = CreateSeconds(meter, "vllm:request_queue_time_seconds", "Histogram of time spent in the waiting queue in seconds.", RequestLatencyBuckets);
        _prefillTime = CreateSeconds(meter, "vllm:request_prefill_time_seconds", "Histogram of time spent in the prefill phase in seconds.", RequestLatencyBuckets);
        _decodeTime = CreateSeconds(meter, "vllm:request_decode_time_seconds", "Histogram of time spent in the decode phase in seconds.", RequestLatencyBuckets);
        _inferenceTime = CreateSeconds(meter, "vllm:request_inference_time_seconds", "Histogram of time spent in the running phase (prefill and decode) in seconds.", RequestLatencyBuckets);
        _requestPromptTokens = CreateTokens(meter, "vllm:request_prompt_tokens", "Number of prefill tokens processed, per request.", RequestTokenBuckets);
        _requestGenerationTokens = CreateTokens(meter, "vllm:request_generation_tokens", "Number of generation tokens processed, per request.", RequestTokenBuckets);
        // vLLM's name ends in _total although it is a histogram; the exposition keeps it as it is.
        _iterationTokens = CreateTokens(meter, "vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", IterationTokenBuckets);
        meter.CreateObservableCounter("vllm:external_prefix_cache_queries", ObserveHostPrefixQueries, "{token}", "Prefix cache queries that missed the device pool and asked the host KV tier, in tokens (--host-kv-cache-memory).");
        meter.CreateObservableCounter("vllm:external_prefix_cache_hits", ObserveHostPrefixHits, "{token}", "Prefix cache hits served by the host KV tier, in tokens.");
        meter.CreateObservableCounter("inference.kv.swapped_out_blocks", ObserveSwappedOut, "{block}", "KV blocks of preempted sequences copied to the host KV tier.");
        meter.CreateObservableCounter("inference.kv.swapped_in_blocks", ObserveSwappedIn, "{block}", "KV blocks copied back from the host KV tier when a preempted sequence resumed.");
        meter.CreateObservableCounter("inference.kv.recomputed_tokens", ObserveRecomputed, "{token}", "Tokens computed again after a preemption lost their KV.");
        meter.CreateObservableCounter("inference.kv.copy_calls", ObserveCopyCalls, "s", "Seconds the scheduler thread spent inside the host KV tier's copy calls (on a GPU the time to queue the copies; no step runs meanwhile).");
        meter.CreateObservableCounter("inference.kv.copy_out_wait", ObserveCopyOutWait, "s", "Seconds the model's steps waited, before running, for the host KV tier's queued copies out (demotions, swaps; on a GPU; no row advances meanwhile).");
        meter.CreateObservableGauge("inference.kv.blocks_used", ObservePoolBlocks, "{block}", "KV blocks owned by sequences, per pool (each device pool; host-tier: the host KV tier's blocks held for preempted sequences).");
        meter.CreateObservableGauge("inference.kv.blocks", ObservePoolSizes, "{block}", "KV blocks each pool holds (its size, fixed at startup; one per attention device of a split model, --kv-cache-memory's sizes).");
        meter.CreateObservableGauge("inference.kv.pool_attention_per_block", ObservePoolSpeed, "s", "Measured attention time per KV block held and step, per pool of a split model with several (the KV placement policy's input; 0 until blocks reach the pool).");
        meter.CreateObservableGauge("vllm:cache_config_info", ObserveCacheConfig, null, "Information of the LLMEngine CacheConfig.");
        _attentionOffloadBytes = meter.CreateCounter<long>("inference.attention.offload", "By", "Bytes sent to and from attention memory devices (q, k, v out, attention outputs back; --attention-device).");
        _stepTime = CreateSeconds(meter, "inference.step", "Histogram of model time per engine step in seconds, by kind: decode (one token per row) or prompt (the step computed prompt tokens).", StepBuckets);
        _kvLoadWait = CreateSeconds(meter, "inference.kv.load_wait", "Histogram of the time a request admitted with KV blocks still being copied in from the host KV tier waited for them before it joined the steps, in seconds.", StepBuckets);
        _attentionTime = CreateSeconds(meter, "inference.attention", "Histogram of attention time per step on each memory device, all layers (--attention-device).", InterTokenBuckets);
        _splitSteps = meter.CreateCounter<long>("inference.split.steps", "{step}", "Steps of a split model, by overlapped (two micro-batches, --attention-overlap) or not.");
        _splitStepTime = meter.CreateCounter<double>("inference.split.step_time", "s", "Wall time of split steps, by overlapped.");
        _splitDenseBusy = meter.CreateCounter<double>("inference.split.dense_busy", "s", "Time the step's thread ran dense segments in split steps, by overlapped.");
        _splitAttentionBusy = meter.CreateCounter<double>("inference.split.attention_busy", "s", "Time host attention ran in split steps, by overlapped (with overlap: the overlap worker's busy time).");
    }

    /// <summary>Records a step's attention time on <paramref name="device"/> (attention offloading, ADR 0005).</summary>
    public void AttentionStep(string device, double seconds)
    {
        if (_attentionTime.Enabled)
        {
            _attentionTime.Record(seconds, _model, new KeyValuePair<string, object?>("device", device));
        }
    }

    /// <summary>Counts bytes a step sent to and from the memory devices (attention offloading, ADR 0005).</summary>
    public void AttentionOffloaded(long bytes)
    {
        if (_attentionOffloadBytes.Enabled)
        {
            _attentionOffloadBytes.Add(bytes, _model);
        }
    }

    /// <summary>Counts a split step's wall and busy times (ADR 0010): step_time / max(dense_busy, attention_busy) over overlapped steps is the overlap's efficiency.</summary>
    public void SplitStep(bool overlapped, double stepSeconds, double denseSeconds, double attentionSeconds)
    {
        if (!_splitSteps.Enabled)
        {
            return;
        }

        var label = new KeyValuePair<string, object?>("overlapped", overlapped ? "true" : "false");
        _splitSteps.Add(1, _model, label);
        _splitStepTime.Add(stepSeconds, _model, label);
        _splitDenseBusy.Add(denseSeconds, _model, label);
        _splitAttentionBusy.Add(attentionSeconds, _model, label);
    }

    /// <summary>Binds the gauges to <paramref name="gauges"/> (the scheduler) and labels every measurement with its model's name.</summary>
    void IEngineObserver.Attach(IEngineGauges gauges)
    {
        ArgumentNullException.ThrowIfNull(gauges);
        _model = new KeyValuePair<string, object?>("model_name", gauges.ModelName);
        Volatile.Write(ref _engine, gauges);
    }

    /// <summary>Whether the inter-token histogram has a listener (checked once per step before timing tokens).</summary>
    bool IEngineObserver.InterTokenLatencyEnabled => _interTokenLatency.Enabled;

    /// <summary>Records one inter-token gap; per-token path, allocation-free.</summary>
    void IEngineObserver.RecordInterTokenLatency(double seconds)
    {
        if (_interTokenLatency.Enabled)
        {
            _interTokenLatency.Record(seconds, _model);
        }
    }

    /// <summary>Records the tokens one engine step computed (prompt chunks and decoded tokens); per-step path, allocation-free.</summary>
    void IEngineObserver.RecordIterationTokens(int tokens)
    {
        if (_iterationTokens.Enabled)
        {
            _iterationTokens.Record(tokens, _model);
        }
    }

    /// <summary>Records one engine step's model time by kind (decode only, or with prompt tokens); per-step path, allocation-free.</summary>
    void IEngineObserver.RecordStepTime(double seconds, bool withPrompt)
    {
        if (_stepTime.Enabled)
        {
            _stepTime.Record(seconds, _model, withPrompt ? PromptStep : DecodeStep);
        }
    }

    /// <summary>Records a host-tier load wait (once per loading admission, not per step).</summary>
    void IEngineObserver.RecordKvLoadWait(double seconds)
    {
        if (_kvLoadWait.Enabled)
        {
            _kvLoadWait.Record(seconds, _model);
        }
    }

    /// <summary>Records one finished sequence: its token counts, finish reason and phase times (null: the phase never began).</summary>
    public void RequestFinished(FinishReason reason, int promptTokens, int generationTokens, double queueSeconds, double? timeToFirstTokenSeconds, double? prefillSeconds, double? decodeSeconds, double e2eSeconds)
    {
        if (_requestSuccess.Enabled || _promptTokens.Enabled || _e2eLatency.Enabled)
        {
            RequestFinishedCore(reason, promptTokens, generationTokens, queueSeconds, timeToFirstTokenSeconds, prefillSeconds, decodeSeconds, e2eSeconds);
        }
    }

    /// <summary>vLLM's <c>finished_reason</c> label value for <paramref name="reason"/>.</summary>
    public static string FinishedReasonLabel(FinishReason reason) => EngineActivity.FinishReasonLabel(reason);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void RequestFinishedCore(FinishReason reason, int promptTokens, int generationTokens, double queueSeconds, double? timeToFirstTokenSeconds, double? prefillSeconds, double? decodeSeconds, double e2eSeconds)
    {
        _promptTokens.Add(promptTokens, _model);
        _generationTokens.Add(generationTokens, _model);
        _requestSuccess.Add(1, _model, new KeyValuePair<string, object?>("finished_reason", FinishedReasonLabel(reason)));
        _requestPromptTokens.Record(promptTokens, _model);
        _requestGenerationTokens.Record(generationTokens, _model);
        _queueTime.Record(queueSeconds, _model);
        _e2eLatency.Record(e2eSeconds, _model);
        if (timeToFirstTokenSeconds is { } ttft)
        {
            _timeToFirstToken.Record(ttft, _model);
        }

        if (prefillSeconds is { } prefill)
        {
            _prefillTime.Record(prefill, _model);
        }

        if (decodeSeconds is { } decode)
        {
            _decodeTime.Record(decode, _model);
        }

        // vLLM's inference time: from first scheduled to finished, the prefill and decode phases together.
        if (prefillSeconds is { } running)
        {
            _inferenceTime.Record(running + (decodeSeconds ?? 0), _model);
        }
    }

    private static Histogram<double> CreateSeconds(Meter meter, string name, string description, double[] buckets)
        => meter.CreateHistogram(name, "s", description, tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = buckets });

    private static Histogram<long> CreateTokens(Meter meter, string name, string description, double[] buckets)
        => meter.CreateHistogram(name, "{token}", description, tags: null, advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = [.. buckets.Select(static b => (long)b)] });

    // vLLM publishes its CacheConfig as labels of a gauge that is always 1, with Python's spellings (True, None).
    private Measurement<int> ObserveCacheConfig()
    {
        var engine = _engine;
        return new(1,
        [
            _model,
            new("block_size", (engine?.BlockSize ?? 0).ToString(CultureInfo.InvariantCulture)),
            new("num_gpu_blocks", (engine?.TotalBlocks ?? 0).ToString(CultureInfo.InvariantCulture)),
            new("num_cpu_blocks", (engine?.HostTierBlocks ?? 0).ToString(CultureInfo.InvariantCulture)),
            new("enable_prefix_caching", engine?.PrefixCachingEnabled == true ? "True" : "False"),
            new("cache_dtype", "auto"),
        ]);
    }

    private Measurement<int> ObserveRunning() => new(_engine?.RunningRequests ?? 0, _model);

    private Measurement<int> ObserveWaiting() => new(_engine?.WaitingRequests ?? 0, _model);

    private Measurement<double> ObserveKvUsage()
    {
        var engine = _engine;
        return new(engine is null || engine.TotalBlocks == 0 ? 0 : (double)engine.UsedBlocks / engine.TotalBlocks, _model);
    }

    private Measurement<long> ObservePrefixQueries() => new(_engine?.PrefixCacheQueryTokens ?? 0, _model);

    private Measurement<long> ObservePrefixHits() => new(_engine?.PrefixCacheHitTokens ?? 0, _model);

    private Measurement<long> ObservePreemptions() => new(_engine?.Preemptions ?? 0, _model);

    private Measurement<long> ObserveHostPrefixQueries() => new(_engine?.HostPrefixCacheQueryTokens ?? 0, _model);

    private Measurement<long> ObserveHostPrefixHits() => new(_engine?.HostPrefixCacheHitTokens ?? 0, _model);

    private Measurement<long> ObserveSwappedOut() => new(_engine?.SwappedOutBlocks ?? 0, _model);

    private Measurement<long> ObserveSwappedIn() => new(_engine?.SwappedInBlocks ?? 0, _model);

    private Measurement<long> ObserveRecomputed() => new(_engine?.RecomputedTokens ?? 0, _model);

    private Measurement<double> ObserveCopyCalls() => new(_engine?.HostTierCopyCallSeconds ?? 0, _model);

    private Measurement<double> ObserveCopyOutWait() => new(_engine?.HostTierCopyOutWaitSeconds ?? 0, _model);

    private IEnumerable<Measurement<double>> ObservePoolSpeed() =>
        _engine is { KvPoolCount: >= 2 } engine ? PerPool(engine, static (e, i) => e.KvPoolSecondsPerBlock(i), 0) : [];

    private IEnumerable<Measurement<int>> ObservePoolSizes() =>
        _engine is { } engine ? PerPool(engine, static (e, i) => e.KvPoolTotalBlocks(i), 0) : [];

    private IEnumerable<Measurement<int>> ObservePoolBlocks()
    {
        var engine = _engine;
        if (engine is null)
        {
            return [];
        }

        var measurements = PerPool(engine, static (e, i) => e.KvPoolUsedBlocks(i), extra: 1);
        if (engine.HostTierBlocks > 0)
        {
            measurements.Add(new(engine.HostTierUsedBlocks, _model, new("pool", "host-tier")));
        }

        return measurements;
    }

    /// <summary>One measurement per KV pool, labelled with its name; room for <paramref name="extra"/> more.</summary>
    private List<Measurement<T>> PerPool<T>(IEngineGauges engine, Func<IEngineGauges, int, T> value, int extra)
        where T : struct
    {
        var measurements = new List<Measurement<T>>(engine.KvPoolCount + extra);
        for (var i = 0; i < engine.KvPoolCount; i++)
        {
            measurements.Add(new(value(engine, i), _model, new("pool", engine.KvPoolName(i))));
        }

        return measurements;
    }
}
