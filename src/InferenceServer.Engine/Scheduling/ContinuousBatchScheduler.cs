// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using System.Threading.Channels;
using InferenceServer.Engine.KvCache;
using InferenceServer.Engine.Observation;
using InferenceServer.Engine.Requests;
using InferenceServer.Onnx.Runtime;
using Microsoft.Extensions.Logging;

namespace InferenceServer.Engine.Scheduling;

/// <summary>
/// The continuous batcher. One dedicated thread owns the model, the KV cache and every sequence; callers reach it
/// only through a bounded submission channel and read results from a per-request channel. Each iteration it drops
/// cancelled work, schedules running sequences (decodes and prefill chunks) and then admits waiting ones within
/// the token budget and free KV blocks, preempting the newest sequence by recompute when blocks run out, runs the
/// model once for the whole batch, samples, streams and frees.
/// </summary>
public sealed partial class ContinuousBatchScheduler : IAsyncDisposable, IEngineGauges
{
    private readonly ServedModel _model;
    private readonly SchedulerOptions _options;
    private readonly ILogger _logger;
    private readonly IEngineObserver? _observer;
    private readonly TimeProvider _time;
    private readonly Channel<Sequence> _incoming;
    private readonly KvCacheManager _kv;
    private readonly IModelRunner _runner;
    private readonly QueueBounds _queue;
    private readonly FaultBreaker _breaker;
    private readonly SchedulerCounters _counters = new();
    private readonly TokenPipeline _pipeline;
    private readonly ForwardBatch _batch = new();
    private readonly ForwardBatch _prefillBatch = new();
    private readonly List<Sequence> _waiting = [];
    private readonly List<Sequence> _running;
    private readonly List<ScheduledRow> _rows;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ManualResetEventSlim _warmedUp = new();
    private readonly Thread _thread;
    private float[] _logits = [];
    private long _arrivals;
    private bool _captureFailureLogged;
    private bool _warmUpFirst;
    private volatile bool _loopFailed;
    private int _disposed;

    /// <summary>
    /// Creates the scheduler for <paramref name="model"/>, negotiating its KV store from <paramref name="options"/>'
    /// <see cref="SchedulerOptions.KvBudget"/> (<see cref="ServedModel.CreateRunner"/>); call <see cref="Start"/> to run it.
    /// <paramref name="time"/> defaults to <see cref="TimeProvider.System"/> and clocks queue, prefill and decode times and
    /// the fault cooldown. Metrics are the host's (<c>AddInferenceEngine</c>).
    /// </summary>
    /// <exception cref="InvalidOperationException">The KV budget holds less than one full-context sequence.</exception>
    public ContinuousBatchScheduler(ServedModel model, SchedulerOptions options, ILogger<ContinuousBatchScheduler> logger, TimeProvider? time = null)
        : this(model, CreateRunner(model, options), options, logger, null, time)
    {
    }

    /// <summary>As the public constructor, with <paramref name="observer"/> (the metrics) bound to this scheduler's gauges.</summary>
    internal ContinuousBatchScheduler(ServedModel model, SchedulerOptions options, ILogger<ContinuousBatchScheduler> logger, IEngineObserver? observer, TimeProvider? time)
        : this(model, CreateRunner(model, options), options, logger, observer, time)
    {
    }

    /// <summary>
    /// Creates the scheduler over <paramref name="runner"/> (created by <see cref="ServedModel.CreateRunner"/>; the scheduler
    /// owns it from now on and disposes it). Its KV-cache manager is sized from the runner's numbers, not re-planned.
    /// <paramref name="observer"/> (optional: the metrics) is bound to this scheduler's gauges and told of every step,
    /// token and finished request.
    /// </summary>
    internal ContinuousBatchScheduler(ServedModel model, IModelRunner runner, SchedulerOptions options, ILogger logger, IEngineObserver? observer, TimeProvider? time)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(runner);
        ArgumentNullException.ThrowIfNull(options);
        _model = model;
        _options = options;
        _logger = logger;
        _observer = observer;
        _time = time ?? TimeProvider.System;
        _counters.LastProgressAt = _time.GetTimestamp();
        _runner = runner;
        if (runner.BlockSize != options.BlockSize)
        {
            SchedulerLog.BlockSizeRaised(logger, options.BlockSize, runner.BlockSize);
        }

        _kv = new KvCacheManager(runner.BlockCount, runner.BlockSize, options.EnablePrefixCaching);
        ConfigureKvTiers(runner, options, logger);
        if (runner is InferenceServer.Onnx.Runtime.IOffloadingRunner split && observer is InferenceServer.Onnx.Attention.IAttentionObserver attention)
        {
            // Attention offloading (ADR 0005): per-step attention time and bytes go to the metrics.
            split.Observer = attention;
        }

        _queue = new QueueBounds(options.MaxQueuedRequests, options.MaxQueuedTokens);
        _breaker = new FaultBreaker(options.MaxConsecutiveStepFailures, options.FaultCooldown, _time, logger);
        _pipeline = new TokenPipeline(model.Spec, _kv, _queue, _counters, observer, _time, logger);
        _running = new List<Sequence>(options.MaxNumSeqs);
        _rows = new List<ScheduledRow>(options.MaxNumSeqs);

        // Unbounded as a channel, bounded by admission: Submit reserves room against MaxQueuedRequests and MaxQueuedTokens,
        // which count the channel and the waiting list together, before anything is written.
        _incoming = Channel.CreateUnbounded<Sequence>(new UnboundedChannelOptions
        {
            SingleReader = true,
            SingleWriter = false,
        });
        _thread = new Thread(Run) { IsBackground = true, Name = "inference-scheduler" };
        observer?.Attach(this);
    }

    /// <summary>The model being served.</summary>
    public ServedModel Model => _model;

    /// <summary>Tokens per KV block: the runner's (<c>--block-size</c>, raised when its kernel needs larger blocks).</summary>
    public int BlockSize => _kv.BlockSize;

    /// <summary>Whether full blocks are shared between prompts with the same prefix (<c>--enable-prefix-caching</c>).</summary>
    internal bool PrefixCachingEnabled => _options.EnablePrefixCaching;

    /// <summary>KV blocks in the pool.</summary>
    internal int TotalBlocks => _kv.BlockCount;

    /// <summary>KV blocks owned by sequences right now (read from any thread; updated by the loop).</summary>
    internal int UsedBlocks => _counters.UsedBlocks;

    /// <summary>Requests admitted or waiting but not finished.</summary>
    public int ActiveRequests => _counters.Active;

    /// <summary>Requests in the running batch (admitted, prefilling or decoding), as of the last step.</summary>
    internal int RunningRequests => _counters.Running;

    /// <summary>Requests submitted but not yet admitted to the running batch (queued or preempted).</summary>
    internal int WaitingRequests => Math.Max(0, ActiveRequests - RunningRequests);

    /// <summary>Time since the loop last made progress (finished a step, or found nothing to do).</summary>
    public TimeSpan SinceLastProgress => _time.GetElapsedTime(_counters.LastProgressAt);

    /// <summary>
    /// True when the loop has stopped, or has work but has made no progress for longer than <paramref name="threshold"/>:
    /// an idle loop waiting for requests is not stalled.
    /// </summary>
    public bool IsStalled(TimeSpan threshold) => !IsRunning || (ActiveRequests > 0 && SinceLastProgress > threshold);

    /// <summary>Model steps run since start.</summary>
    public long Steps => _counters.Steps;

    /// <summary>True while the loop runs.</summary>
    public bool IsRunning => _thread.IsAlive && !_stopping.IsCancellationRequested;

    /// <summary>
    /// False once <see cref="SchedulerOptions.MaxConsecutiveStepFailures"/> model steps in a row have failed, until a step
    /// succeeds again (see <see cref="AcceptsWork"/>); readiness checks report it.
    /// </summary>
    public bool IsHealthy => _breaker.IsHealthy && !_loopFailed;

    /// <summary>Model steps that failed in a row (0 after any success).</summary>
    internal int ConsecutiveStepFailures => _breaker.ConsecutiveFailures;

    /// <summary>Sequences preempted (blocks freed, recomputed later) since start.</summary>
    internal long Preemptions => _counters.Preemptions;

    /// <summary>Iterations that waited for host-tier copy-ins with nothing else to run.</summary>
    internal long LoadWaits => _counters.LoadWaits;

    /// <summary>Prefix-cache lookups since start, in blocks (read on the loop's thread or when idle).</summary>
    internal long PrefixCacheQueries => _kv.PrefixQueries;

    /// <summary>Prefix-cache hits since start, in blocks.</summary>
    internal long PrefixCacheHits => _kv.PrefixHits;

    /// <summary>Prefix-cache lookups since start, in tokens (blocks times the block size), as vLLM counts them.</summary>
    internal long PrefixCacheQueryTokens => _kv.PrefixQueries * _kv.BlockSize;

    /// <summary>Prefix-cache hits since start, in tokens.</summary>
    internal long PrefixCacheHitTokens => _kv.PrefixHits * _kv.BlockSize;

    /// <summary>Sequences accepted and not yet admitted to the batch (the bounded queue's length).</summary>
    internal int QueuedRequests => _queue.Requests;

    /// <summary>Prompt tokens of <see cref="QueuedRequests"/>.</summary>
    internal long QueuedTokens => _queue.Tokens;

    /// <summary>
    /// True when the queue is at either bound, so a new request would be refused: a cheap check for callers to make
    /// before reading and tokenizing a request. <see cref="Submit"/> decides exactly.
    /// </summary>
    public bool IsQueueFull => _queue.IsFull;

    /// <summary>
    /// False while stopping, after the loop failed, and while unhealthy within <see cref="SchedulerOptions.FaultCooldown"/>
    /// of the last failed step; <see cref="Submit"/> then answers <see cref="SubmitResult.Unavailable"/>.
    /// </summary>
    public bool AcceptsWork => !_stopping.IsCancellationRequested && !_loopFailed && _breaker.AllowsWork;

    /// <inheritdoc />
    string IEngineGauges.ModelName => _model.Name;

    /// <inheritdoc />
    int IEngineGauges.BlockSize => BlockSize;

    /// <inheritdoc />
    int IEngineGauges.TotalBlocks => TotalBlocks;

    /// <inheritdoc />
    int IEngineGauges.UsedBlocks => UsedBlocks;

    /// <inheritdoc />
    bool IEngineGauges.PrefixCachingEnabled => PrefixCachingEnabled;

    /// <inheritdoc />
    int IEngineGauges.RunningRequests => RunningRequests;

    /// <inheritdoc />
    int IEngineGauges.WaitingRequests => WaitingRequests;

    /// <inheritdoc />
    long IEngineGauges.PrefixCacheQueryTokens => PrefixCacheQueryTokens;

    /// <inheritdoc />
    long IEngineGauges.PrefixCacheHitTokens => PrefixCacheHitTokens;

    /// <inheritdoc />
    long IEngineGauges.Preemptions => Preemptions;

    /// <inheritdoc />
    int IEngineGauges.HostTierBlocks => HostTierBlocks;

    /// <inheritdoc />
    int IEngineGauges.HostTierUsedBlocks => HostTierUsedBlocks;

    /// <inheritdoc />
    long IEngineGauges.HostPrefixCacheQueryTokens => HostPrefixCacheQueryTokens;

    /// <inheritdoc />
    long IEngineGauges.HostPrefixCacheHitTokens => HostPrefixCacheHitTokens;

    /// <inheritdoc />
    long IEngineGauges.SwappedOutBlocks => SwappedOutBlocks;

    /// <inheritdoc />
    long IEngineGauges.SwappedInBlocks => SwappedInBlocks;

    /// <inheritdoc />
    long IEngineGauges.RecomputedTokens => RecomputedTokens;

    /// <inheritdoc />
    double IEngineGauges.HostTierCopyCallSeconds => HostTierCopyCallSeconds;

    /// <inheritdoc />
    double IEngineGauges.HostTierCopyOutWaitSeconds => HostTierCopyOutWaitSeconds;

    /// <inheritdoc />
    int IEngineGauges.KvPoolCount => KvPools.Count;

    /// <inheritdoc />
    string IEngineGauges.KvPoolName(int pool) => KvPools[pool].Name;

    /// <inheritdoc />
    int IEngineGauges.KvPoolUsedBlocks(int pool) => KvPoolUsedBlocks(pool);

    /// <inheritdoc />
    int IEngineGauges.KvPoolTotalBlocks(int pool) => KvPools[pool].BlockCount;

    /// <inheritdoc />
    double IEngineGauges.KvPoolSecondsPerBlock(int pool) => KvPoolSecondsPerBlock(pool);

    /// <summary>
    /// Starts the scheduler thread and returns once it has run the warm-up (<see cref="SchedulerOptions.WarmUp"/>), if any.
    /// The warm-up runs on the scheduler thread itself: ONNX Runtime keeps a session's CUDA graphs per thread, so graphs
    /// captured on the caller's thread would be captured again by the loop.
    /// </summary>
    public void Start()
    {
        _warmUpFirst = _options.WarmUp ?? (_runner is PagedDeviceRunner || _runner is InferenceServer.Onnx.Runtime.IOffloadingRunner { CapturesSteps: true });
        _thread.Start();
        _warmedUp.Wait();
    }

    /// <summary>
    /// <see cref="ModelWarmup"/>'s steps, on the scheduler thread before its loop starts (the host is not listening yet). A
    /// step that fails is logged and the rest skipped: the server still starts, and a request of that shape fails as it would have.
    /// </summary>
    private void WarmUp()
    {
        var plan = ModelWarmup.Plan(_options.MaxNumSeqs, _options.MaxNumBatchedTokens, _runner.BlockSize, _runner.BlockCount, _model.Spec.ContextLength);
        try
        {
            var (calls, elapsed) = ModelWarmup.Run(_runner, plan);
            SchedulerLog.WarmedUp(_logger, calls, plan.Count, elapsed.TotalSeconds);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            SchedulerLog.WarmUpFailed(_logger, ex);
        }
    }

    /// <summary>
    /// Queues <paramref name="request"/>. Returns false, with nothing queued, when the queue is full or the engine is
    /// unavailable (<see cref="Submit"/> tells which).
    /// Cancelling <paramref name="cancellationToken"/> ends the request at the next iteration and frees its blocks.
    /// </summary>
    /// <exception cref="ArgumentException">A sampling parameter cannot apply to this model (<see cref="SamplingParameters.Validate"/>).</exception>
    public bool TrySubmit(GenerationRequest request, out ChannelReader<GenerationUpdate> updates, CancellationToken cancellationToken)
    {
        var readers = new ChannelReader<GenerationUpdate>[1];
        var result = Submit([request], readers, cancellationToken);
        updates = readers[0];
        return result == SubmitResult.Accepted;
    }

    /// <summary>
    /// Queues all of <paramref name="requests"/> or none: nothing is queued when the queue cannot take them all
    /// (<see cref="SubmitResult.QueueFull"/>) or the engine is stopping or unhealthy (<see cref="SubmitResult.Unavailable"/>).
    /// <paramref name="updates"/>[i] receives request i's updates (a reader that never yields when nothing was queued).
    /// Cancelling <paramref name="cancellationToken"/> ends the requests at the next iteration and frees their blocks.
    /// </summary>
    /// <exception cref="ArgumentException">A sampling parameter cannot apply to this model (<see cref="SamplingParameters.Validate"/>).</exception>
    public SubmitResult Submit(IReadOnlyList<GenerationRequest> requests, ChannelReader<GenerationUpdate>[] updates, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(requests);
        ArgumentNullException.ThrowIfNull(updates);
        var sequences = new Sequence[requests.Count];
        long tokens = 0;
        for (var i = 0; i < requests.Count; i++)
        {
            var request = requests[i];
            ArgumentNullException.ThrowIfNull(request);
            request.Sampling.Validate(_model.Spec.VocabularySize);

            // One update per generated token plus the final one: the channel can never be full, so the loop never waits on a reader.
            // No sequence outgrows the context, so that bounds the capacity too (and MaxTokens + 2 cannot overflow).
            var output = Channel.CreateBounded<GenerationUpdate>(new BoundedChannelOptions(Math.Min(request.Stop.MaxTokens, _model.Spec.ContextLength) + 2)
            {
                SingleReader = true,
                SingleWriter = true,
            });
            var detokenizer = _model.Tokenizer?.CreateStreamingDetokenizer(request.SkipSpecialTokens);
            sequences[i] = new Sequence(request, new SequenceId(Interlocked.Increment(ref _arrivals)), output.Writer, detokenizer, _model.EosTokenIds, cancellationToken)
            {
                // The handler's span (HTTP or gRPC), so the engine's spans join the caller's trace.
                ParentContext = Activity.Current?.Context ?? default,
                SubmittedAt = _time.GetTimestamp(),
            };
            updates[i] = output.Reader;
            tokens += request.PromptTokens.Count;
        }

        if (!AcceptsWork)
        {
            return SubmitResult.Unavailable;
        }

        if (!_queue.TryReserve(sequences.Length, tokens))
        {
            return SubmitResult.QueueFull;
        }

        foreach (var sequence in sequences)
        {
            sequence.Queued = true;
            _counters.RequestStarted(_time.GetTimestamp());
            if (!_incoming.Writer.TryWrite(sequence))
            {
                // The loop stopped between the check and the write: answer here, since it never will.
                AbandonUnqueued(sequence);
            }
        }

        return SubmitResult.Accepted;
    }

    /// <summary>Stops the loop; requests still in flight end with <see cref="FinishReason.Cancelled"/>. Later calls do nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync().ConfigureAwait(false);
        }

        _incoming.Writer.TryComplete();
        if (_thread.IsAlive)
        {
            await Task.Run(() => _thread.Join(TimeSpan.FromSeconds(30))).ConfigureAwait(false);
        }

        _stopping.Dispose();
        _warmedUp.Dispose();
        _runner.Dispose();
        _kv.HostTier?.Dispose();
    }

    private void Run()
    {
        try
        {
            if (_warmUpFirst)
            {
                WarmUp();
            }
        }
        finally
        {
            _warmedUp.Set();
        }

        var stop = _stopping.Token;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                if (_running.Count == 0 && _waiting.Count == 0 && !_incoming.Reader.TryPeek(out _))
                {
                    if (!_incoming.Reader.WaitToReadAsync(stop).AsTask().GetAwaiter().GetResult())
                    {
                        break;
                    }

                    _counters.LastProgressAt = _time.GetTimestamp();
                }

                Step();
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            _loopFailed = true;
            SchedulerLog.LoopFailed(_logger, ex);
        }
        finally
        {
            // No submission can land after the drain: a late writer finds the channel completed and answers itself.
            _incoming.Writer.TryComplete();
            DrainOnStop();
        }
    }

    /// <summary>One iteration: intake, cancellation, scheduling, one model run, sampling and streaming.</summary>
    internal void Step()
    {
        while (_incoming.Reader.TryRead(out var sequence))
        {
            InsertWaiting(sequence);
        }

        DropCancelled(_running);
        DropCancelled(_waiting);
        Schedule();
        if (_rows.Count > 0)
        {
            Execute();
        }
        else
        {
            WaitForLoads();
        }

        _counters.UsedBlocks = _kv.UsedBlockCount;
        _counters.Running = _running.Count;
        _counters.LastProgressAt = _time.GetTimestamp();
    }

    private void InsertWaiting(Sequence sequence)
    {
        // Ordered by priority, then arrival: a preempted sequence keeps its place ahead of later arrivals.
        var index = _waiting.Count;
        while (index > 0 && Compare(_waiting[index - 1], sequence) > 0)
        {
            index--;
        }

        _waiting.Insert(index, sequence);
    }

    private static int Compare(Sequence a, Sequence b)
    {
        var byPriority = a.Request.Priority.CompareTo(b.Request.Priority);
        return byPriority != 0 ? byPriority : a.Id.CompareTo(b.Id);
    }

    private void DropCancelled(List<Sequence> sequences)
    {
        for (var i = sequences.Count - 1; i >= 0; i--)
        {
            var sequence = sequences[i];
            if (sequence.Cancellation.IsCancellationRequested)
            {
                sequences.RemoveAt(i);
                _pipeline.Finish(sequence, FinishReason.Cancelled, string.Empty, null);
            }
        }
    }

    /// <summary>Answers a sequence that was accepted after the loop stopped (it never reached the loop, so owns no blocks).</summary>
    private void AbandonUnqueued(Sequence sequence)
    {
        _queue.Leave(sequence);
        _counters.RequestEnded();
        sequence.Output.TryWrite(new GenerationUpdate(-1, string.Empty, FinishReason.Cancelled, sequence.PromptLength, 0, 0, "The server is shutting down."));
        sequence.Output.TryComplete();
    }

    private void DrainOnStop()
    {
        while (_incoming.Reader.TryRead(out var sequence))
        {
            _waiting.Add(sequence);
        }

        foreach (var sequence in _running)
        {
            _pipeline.Finish(sequence, FinishReason.Cancelled, string.Empty, "The server is shutting down.");
        }

        foreach (var sequence in _waiting)
        {
            _pipeline.Finish(sequence, FinishReason.Cancelled, string.Empty, "The server is shutting down.");
        }

        _running.Clear();
        _waiting.Clear();
    }

    private static IModelRunner CreateRunner(ServedModel model, SchedulerOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        return model.CreateRunner(options.KvBudget);
    }
}
