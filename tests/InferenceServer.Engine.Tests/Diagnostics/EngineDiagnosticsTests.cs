using System.Diagnostics;
using System.Diagnostics.Metrics;
using InferenceServer.Engine.Diagnostics;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Engine.Tests.Scheduling;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace InferenceServer.Engine.Tests.Diagnostics;

/// <summary>
/// The engine's metrics and spans on a real model, with the loop stepped by hand on a fake clock: every time, count
/// and label is known exactly.
/// </summary>
public sealed class EngineDiagnosticsTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly TestMeterFactory _meters = new();
    private readonly MeterListener _listener = new();
    private readonly List<(string Name, double Value, Dictionary<string, object?> Tags)> _measurements = [];

    public EngineDiagnosticsTests()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (_meters.Created.Contains(instrument.Meter))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        _listener.Start();
    }

    public void Dispose()
    {
        _listener.Dispose();
        _meters.Dispose();
    }

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        lock (_measurements)
        {
            _measurements.Add((instrument.Name, value, tags.ToArray().ToDictionary(t => t.Key, t => t.Value)));
        }
    }

    private List<double> Values(string name) => _measurements.Where(m => m.Name == name).Select(m => m.Value).ToList();

    [Fact]
    public async Task Metrics_And_Spans_CarryExactTimesAndCounts()
    {
        var model = ServedModel.Load(SchedulerHarness.Fixture("llama-gqa"));
        var metrics = new InferenceMetrics(_meters);
        await using var scheduler = new ContinuousBatchScheduler(model, new SchedulerOptions(), NullLogger<ContinuousBatchScheduler>.Instance, metrics, _time);

        var spans = new List<Activity>();
        var traceId = ActivityTraceId.CreateRandom();
        using var spanListener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == EngineTelemetry.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> options) => options.Parent.TraceId == traceId ? ActivitySamplingResult.AllDataAndRecorded : ActivitySamplingResult.None,
            ActivityStopped = spans.Add,
        };
        ActivitySource.AddActivityListener(spanListener);

        // The caller's span is current when it submits.
        using var caller = new Activity("caller").SetParentId(traceId, ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded).Start();
        var prompt = SchedulerHarness.Cases("llama-gqa")[0].Prompt;
        Assert.True(scheduler.TrySubmit(
            new GenerationRequest { RequestId = "r1", PromptTokens = prompt, Sampling = SamplingParameters.Greedy, Stop = new StopConditions { MaxTokens = 3, IgnoreEos = true } },
            out var updates,
            CancellationToken.None));
        caller.Stop();

        _listener.RecordObservableInstruments();
        Assert.Equal([1.0], Values("vllm:num_requests_waiting"));
        Assert.Equal([0.0], Values("vllm:num_requests_running"));

        _time.Advance(TimeSpan.FromMilliseconds(100)); // queued for 100 ms
        scheduler.Step();                              // prefill and the first token
        _measurements.Clear();
        _listener.RecordObservableInstruments();
        Assert.Equal([0.0], Values("vllm:num_requests_waiting"));
        Assert.Equal([1.0], Values("vllm:num_requests_running"));
        Assert.True(Values("vllm:kv_cache_usage_perc").Single() > 0);
        _measurements.Clear();

        _time.Advance(TimeSpan.FromMilliseconds(20));
        scheduler.Step();
        _time.Advance(TimeSpan.FromMilliseconds(30));
        scheduler.Step();                              // third token: length

        var (tokens, final) = await SchedulerHarness.CollectAsync(updates);
        Assert.Equal(3, tokens.Length);
        Assert.Equal(FinishReason.Length, final.Finish);
        Assert.Equal(TimeSpan.FromMilliseconds(100), final.QueueTime);
        Assert.Equal(TimeSpan.FromMilliseconds(100), final.TimeToFirstToken);

        Assert.Equal([prompt.Length], Values("vllm:prompt_tokens"));
        Assert.Equal([3.0], Values("vllm:generation_tokens"));
        var success = Assert.Single(_measurements, m => m.Name == "vllm:request_success");
        Assert.Equal("length", success.Tags["finished_reason"]);
        Assert.Equal(model.Name, success.Tags["model_name"]);
        Assert.Equal([0.1], Values("vllm:request_queue_time_seconds"));
        Assert.Equal([0.1], Values("vllm:time_to_first_token_seconds"));
        Assert.Equal([0.02, 0.03], Values("vllm:inter_token_latency_seconds"));
        Assert.Equal([0.0], Values("vllm:request_prefill_time_seconds"));
        Assert.Equal([0.05], Values("vllm:request_decode_time_seconds"));
        Assert.Equal([0.15], Values("vllm:e2e_request_latency_seconds"));

        Assert.Equal(["queue", "prefill", "decode"], spans.Select(s => s.OperationName));
        Assert.All(spans, s => Assert.Equal(caller.SpanId, s.ParentSpanId));
        Assert.Equal(TimeSpan.FromMilliseconds(100), spans[0].Duration);
        Assert.Equal(TimeSpan.FromMilliseconds(50), spans[2].Duration);
        Assert.Equal(prompt.Length, spans[1].GetTagItem("gen_ai.usage.input_tokens"));
        Assert.Equal(3, spans[2].GetTagItem("gen_ai.usage.output_tokens"));
        Assert.Equal("length", spans[2].GetTagItem("gen_ai.response.finish_reasons"));
    }

    [Fact]
    public async Task Cancelled_CountsAsAbort_WithoutTimeToFirstToken()
    {
        var model = ServedModel.Load(SchedulerHarness.Fixture("llama-gqa"));
        await using var scheduler = new ContinuousBatchScheduler(model, new SchedulerOptions(), NullLogger<ContinuousBatchScheduler>.Instance, new InferenceMetrics(_meters), _time);
        using var cancel = new CancellationTokenSource();
        Assert.True(scheduler.TrySubmit(
            new GenerationRequest { RequestId = "r2", PromptTokens = [1, 2, 3], Sampling = SamplingParameters.Greedy, Stop = new StopConditions { MaxTokens = 5 } },
            out var updates,
            cancel.Token));
        _time.Advance(TimeSpan.FromMilliseconds(40));
        await cancel.CancelAsync();
        scheduler.Step();

        var (tokens, final) = await SchedulerHarness.CollectAsync(updates);
        Assert.Empty(tokens);
        Assert.Equal(FinishReason.Cancelled, final.Finish);
        Assert.Null(final.TimeToFirstToken);
        Assert.Equal(TimeSpan.FromMilliseconds(40), final.QueueTime);
        Assert.Equal("abort", Assert.Single(_measurements, m => m.Name == "vllm:request_success").Tags["finished_reason"]);
        Assert.Empty(Values("vllm:time_to_first_token_seconds"));
        Assert.Equal([0.0], Values("vllm:generation_tokens"));
    }

    [Fact]
    public async Task IsStalled_IdleLoopIsNot_StoppedLoopIs()
    {
        var model = ServedModel.Load(SchedulerHarness.Fixture("llama-gqa"));
        var scheduler = new ContinuousBatchScheduler(model, new SchedulerOptions(), NullLogger<ContinuousBatchScheduler>.Instance, null, _time);
        Assert.True(scheduler.IsStalled(TimeSpan.FromSeconds(1))); // not started
        scheduler.Start();
        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.False(scheduler.IsStalled(TimeSpan.FromSeconds(1))); // idle, waiting for work
        await scheduler.DisposeAsync();
        Assert.True(scheduler.IsStalled(TimeSpan.FromSeconds(1)));
        await scheduler.DisposeAsync(); // a second dispose does nothing
    }

    [Fact]
    public async Task StepTime_IsRecordedPerStep_ByKind()
    {
        // The runner takes 40 ms of the fake clock for a step with prompt tokens and 7 ms for a decode step.
        var model = ServedModel.Load(SchedulerHarness.Fixture("llama-gqa"));
        var options = new SchedulerOptions();
        using var runner = new ClockRunner(model.CreateRunner(options.KvBudget), _time);
        await using var scheduler = new ContinuousBatchScheduler(model, runner, options, NullLogger<ContinuousBatchScheduler>.Instance, new InferenceMetrics(_meters), _time);
        Assert.True(scheduler.TrySubmit(
            new GenerationRequest { RequestId = "s1", PromptTokens = [5, 6, 7, 8], Sampling = SamplingParameters.Greedy, Stop = new StopConditions { MaxTokens = 3, IgnoreEos = true } },
            out var updates,
            CancellationToken.None));
        scheduler.Step();
        scheduler.Step();
        scheduler.Step();
        await SchedulerHarness.CollectAsync(updates);

        var steps = _measurements.Where(m => m.Name == "inference.step").ToList();
        Assert.Equal([0.04, 0.007, 0.007], steps.Select(m => Math.Round(m.Value, 6)));
        Assert.Equal(["prompt", "decode", "decode"], steps.Select(m => (string?)m.Tags["kind"]));
        Assert.All(steps, m => Assert.Equal(model.Name, m.Tags["model_name"]));
    }

    private sealed class ClockRunner(InferenceServer.Onnx.Runtime.IModelRunner inner, FakeTimeProvider time) : InferenceServer.Onnx.Runtime.IModelRunner
    {
        public InferenceServer.Onnx.Runtime.ModelSpec Spec => inner.Spec;

        public int BlockCount => inner.BlockCount;

        public int BlockSize => inner.BlockSize;

        public void Forward(InferenceServer.Onnx.Runtime.ForwardBatch batch, Span<float> logits)
        {
            inner.Forward(batch, logits);
            time.Advance(TimeSpan.FromMilliseconds(batch.TokenCount > batch.RowCount ? 40 : 7));
        }

        public void Dispose() => inner.Dispose();
    }

    [Fact]
    public async Task StallClock_StartsAtTheFirstRequestAfterIdle_AndIsNotResetByMoreWork()
    {
        // The loop is not started, so nothing but submission moves the clock: deterministic on the fake time. Before the
        // fix, the first request after ten idle minutes made the engine "stalled for ten minutes" until the loop woke, and
        // the rest of a burst got 503 "engine stalled".
        var model = ServedModel.Load(SchedulerHarness.Fixture("llama-gqa"));
        await using var scheduler = new ContinuousBatchScheduler(model, new SchedulerOptions(), NullLogger<ContinuousBatchScheduler>.Instance, null, _time);
        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(TimeSpan.FromMinutes(10), scheduler.SinceLastProgress);

        Assert.True(scheduler.TrySubmit(Request("first"), out _, CancellationToken.None));
        Assert.Equal(TimeSpan.Zero, scheduler.SinceLastProgress);

        // Work that is not progressing stays stalled whatever arrives after it.
        _time.Advance(TimeSpan.FromMinutes(2));
        Assert.True(scheduler.TrySubmit(Request("second"), out _, CancellationToken.None));
        Assert.Equal(TimeSpan.FromMinutes(2), scheduler.SinceLastProgress);
        Assert.Equal(2, scheduler.ActiveRequests);

        static GenerationRequest Request(string id) => new() { RequestId = id, PromptTokens = [1, 2, 3], Sampling = SamplingParameters.Greedy, Stop = new StopConditions { MaxTokens = 2 } };
    }

    private sealed class TestMeterFactory : IMeterFactory
    {
        public List<Meter> Created { get; } = [];

        public Meter Create(MeterOptions options)
        {
            var meter = new Meter(options.Name, options.Version, options.Tags, this);
            Created.Add(meter);
            return meter;
        }

        public void Dispose()
        {
            foreach (var meter in Created)
            {
                meter.Dispose();
            }
        }
    }
}
