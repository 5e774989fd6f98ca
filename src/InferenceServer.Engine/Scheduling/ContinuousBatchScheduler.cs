// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using System.Threading.Channels;
using InferenceServer.Engine.Diagnostics;
using InferenceServer.Engine.KvCache;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Sampling;
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
public sealed partial class ContinuousBatchScheduler : IAsyncDisposable
{
    private readonly ServedModel _model;
    private readonly SchedulerOptions _options;
    private readonly ILogger _logger;
    private readonly InferenceMetrics? _metrics;
    private readonly TimeProvider _time;
    private readonly Channel<Sequence> _incoming;
    private readonly KvCacheManager _kv;
    private readonly IModelRunner _runner;
    private readonly ForwardBatch _batch = new();
    private readonly ForwardBatch _prefillBatch = new();
    private readonly Sampler _sampler = new();
    private readonly List<Sequence> _waiting = [];
    private readonly List<Sequence> _running = [];
    private readonly List<Sequence> _scheduled = [];
    private readonly List<int> _chunks = [];
    private readonly List<bool> _takesArgmax = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly Thread _thread;
    private float[] _logits = [];
    private float[] _rawLogits = [];
    private long _arrivals;
    private long _steps;
    private int _activeCount;
    private int _runningCount;
    private long _lastProgressAt;
    private long _sampledAt;
    private bool _timeTokens;
    private int _disposed;

    /// <summary>
    /// Creates the scheduler for <paramref name="model"/> and sizes its KV cache; call <see cref="Start"/> to run it.
    /// <paramref name="metrics"/> (optional) is bound to this scheduler's gauges; <paramref name="time"/> defaults to
    /// <see cref="TimeProvider.System"/> and clocks queue, prefill and decode times and the fault cooldown.
    /// </summary>
    public ContinuousBatchScheduler(ServedModel model, SchedulerOptions options, ILogger<ContinuousBatchScheduler> logger, InferenceMetrics? metrics = null, TimeProvider? time = null)
    {
        _model = model;
        _options = options;
        _logger = logger;
        _metrics = metrics;
        _time = time ?? TimeProvider.System;
        _lastProgressAt = _time.GetTimestamp();
        var blockSize = model.Decoder.ChooseBlockSize(options.BlockSize);
        if (blockSize != options.BlockSize)
        {
            Log.BlockSizeRaised(logger, options.BlockSize, blockSize);
            options.BlockSize = blockSize;
        }

        var blocks = PlanKvBlocks(model, options);
        _kv = new KvCacheManager(blocks, options.BlockSize, options.EnablePrefixCaching);
        var runner = model.CreateRunner(blocks, options.BlockSize);
        if (runner is InferenceServer.Onnx.Runtime.IOffloadingRunner split)
        {
            // Attention offloading (ADR 0005): per-step attention time and bytes go to the metrics.
            split.Observer = metrics;
        }

        _runner = options.RunnerDecorator is { } decorate ? decorate(runner) : runner;
        _rawLogits = new float[model.Spec.VocabularySize];

        // Unbounded as a channel, bounded by admission: Submit reserves room against MaxQueuedRequests and MaxQueuedTokens,
        // which count the channel and the waiting list together, before anything is written.
        _incoming = Channel.CreateUnbounded<Sequence>(new UnboundedChannelOptions
        {
            SingleReader = true,
            SingleWriter = false,
        });
        _thread = new Thread(Run) { IsBackground = true, Name = "inference-scheduler" };
        metrics?.Attach(this);
    }

    /// <summary>The model being served.</summary>
    public ServedModel Model => _model;

    /// <summary>Tokens per KV block (<c>--block-size</c>).</summary>
    public int BlockSize => _options.BlockSize;

    /// <summary>Whether full blocks are shared between prompts with the same prefix (<c>--enable-prefix-caching</c>).</summary>
    internal bool PrefixCachingEnabled => _options.EnablePrefixCaching;

    /// <summary>KV blocks in the pool.</summary>
    internal int TotalBlocks => _kv.BlockCount;

    /// <summary>KV blocks owned by sequences right now (read from any thread; updated by the loop).</summary>
    internal int UsedBlocks => Volatile.Read(ref _usedBlocks);

    /// <summary>Requests admitted or waiting but not finished.</summary>
    public int ActiveRequests => Volatile.Read(ref _activeCount);

    /// <summary>Requests in the running batch (admitted, prefilling or decoding), as of the last step.</summary>
    internal int RunningRequests => Volatile.Read(ref _runningCount);

    /// <summary>Requests submitted but not yet admitted to the running batch (queued or preempted).</summary>
    internal int WaitingRequests => Math.Max(0, ActiveRequests - RunningRequests);

    /// <summary>Time since the loop last made progress (finished a step, or found nothing to do).</summary>
    public TimeSpan SinceLastProgress => _time.GetElapsedTime(Interlocked.Read(ref _lastProgressAt));

    /// <summary>
    /// True when the loop has stopped, or has work but has made no progress for longer than <paramref name="threshold"/>:
    /// an idle loop waiting for requests is not stalled.
    /// </summary>
    public bool IsStalled(TimeSpan threshold) => !IsRunning || (ActiveRequests > 0 && SinceLastProgress > threshold);

    /// <summary>Model steps run since start.</summary>
    public long Steps => Interlocked.Read(ref _steps);

    /// <summary>True while the loop runs.</summary>
    public bool IsRunning => _thread.IsAlive && !_stopping.IsCancellationRequested;

    /// <summary>
    /// False once <see cref="SchedulerOptions.MaxConsecutiveStepFailures"/> model steps in a row have failed, until a step
    /// succeeds again (see <see cref="AcceptsWork"/>); readiness checks report it.
    /// </summary>
    public bool IsHealthy => Volatile.Read(ref _consecutiveFailures) < _options.MaxConsecutiveStepFailures && !_loopFailed;

    /// <summary>Model steps that failed in a row (0 after any success).</summary>
    internal int ConsecutiveStepFailures => Volatile.Read(ref _consecutiveFailures);

    private int _usedBlocks;
    private long _preemptions;

    /// <summary>Sequences preempted (blocks freed, recomputed later) since start.</summary>
    internal long Preemptions => Interlocked.Read(ref _preemptions);

    /// <summary>Prefix-cache lookups since start, in blocks (read on the loop's thread or when idle).</summary>
    internal long PrefixCacheQueries => _kv.PrefixQueries;

    /// <summary>Prefix-cache hits since start, in blocks.</summary>
    internal long PrefixCacheHits => _kv.PrefixHits;

    /// <summary>Prefix-cache lookups since start, in tokens (blocks times the block size), as vLLM counts them.</summary>
    internal long PrefixCacheQueryTokens => _kv.PrefixQueries * _kv.BlockSize;

    /// <summary>Prefix-cache hits since start, in tokens.</summary>
    internal long PrefixCacheHitTokens => _kv.PrefixHits * _kv.BlockSize;

    /// <summary>Starts the scheduler thread.</summary>
    public void Start() => _thread.Start();

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
            sequences[i] = new Sequence(request, Interlocked.Increment(ref _arrivals), output.Writer, detokenizer, _model.EosTokenIds, cancellationToken)
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

        if (!TryReserveQueue(sequences.Length, tokens))
        {
            return SubmitResult.QueueFull;
        }

        foreach (var sequence in sequences)
        {
            sequence.Queued = true;
            Interlocked.Increment(ref _activeCount);
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
        _runner.Dispose();
    }

    private void Run()
    {
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

                    Interlocked.Exchange(ref _lastProgressAt, _time.GetTimestamp());
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
            Log.LoopFailed(_logger, ex);
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
        if (_scheduled.Count > 0)
        {
            Execute();
        }

        Volatile.Write(ref _usedBlocks, _kv.UsedBlockCount);
        Volatile.Write(ref _runningCount, _running.Count);
        Interlocked.Exchange(ref _lastProgressAt, _time.GetTimestamp());
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
        return byPriority != 0 ? byPriority : a.Arrival.CompareTo(b.Arrival);
    }

    private void DropCancelled(List<Sequence> sequences)
    {
        for (var i = sequences.Count - 1; i >= 0; i--)
        {
            var sequence = sequences[i];
            if (sequence.Cancellation.IsCancellationRequested)
            {
                sequences.RemoveAt(i);
                Finish(sequence, FinishReason.Cancelled, string.Empty, null);
            }
        }
    }

    private void DrainOnStop()
    {
        while (_incoming.Reader.TryRead(out var sequence))
        {
            _waiting.Add(sequence);
        }

        foreach (var sequence in _running)
        {
            Finish(sequence, FinishReason.Cancelled, string.Empty, "The server is shutting down.");
        }

        foreach (var sequence in _waiting)
        {
            Finish(sequence, FinishReason.Cancelled, string.Empty, "The server is shutting down.");
        }

        _running.Clear();
        _waiting.Clear();
    }

    /// <summary>
    /// How many KV blocks <see cref="SchedulerOptions.KvCacheMemory"/> buys for <paramref name="model"/>, in blocks of
    /// the size its store uses (<see cref="IDecoderModel.ChooseBlockSize"/>): bytes, or a fraction of the device's free
    /// memory (a device store) or of the process's available memory (host pages).
    /// Throws <see cref="InvalidOperationException"/> when that is less than one full-context sequence.
    /// </summary>
    public static int PlanKvBlocks(ServedModel model, SchedulerOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        var spec = model.Spec;
        var blockSize = model.Decoder.ChooseBlockSize(options.BlockSize);
        var blockBytes = spec.KvBytesPerToken * blockSize;
        var budget = ResolveKvBytes(options.KvCacheMemory, model.Decoder.DeviceFreeMemory);
        var blocks = (int)Math.Clamp(budget / Math.Max(1, blockBytes), 1, int.MaxValue / blockSize);
        var needed = (spec.ContextLength + blockSize - 1) / blockSize;
        if (blocks < needed)
        {
            throw new InvalidOperationException(
                $"--kv-cache-memory: {budget} bytes hold {blocks} blocks of {blockSize} tokens, fewer than one full-context sequence needs ({needed} blocks, {needed * blockBytes} bytes); raise it.");
        }

        return blocks;
    }

    private static long ResolveKvBytes(double setting, long? deviceFreeMemory)
    {
        if (setting is > 0 and <= 1)
        {
            var available = deviceFreeMemory ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
            return (long)(available * setting);
        }

        return (long)setting;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1000, EventName = "SchedulerLoopFailed", Level = LogLevel.Critical, Message = "The scheduler loop failed and stopped.")]
        public static partial void LoopFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 1001, EventName = "ModelStepFailed", Level = LogLevel.Error, Message = "A model step over {Rows} sequences failed; those requests end with an error.")]
        public static partial void StepFailed(ILogger logger, int rows, Exception exception);

        [LoggerMessage(EventId = 1002, EventName = "SequencePreempted", Level = LogLevel.Debug, Message = "Request {RequestId} preempted to free KV blocks; it will be recomputed.")]
        public static partial void Preempted(ILogger logger, string requestId);

        [LoggerMessage(EventId = 1003, EventName = "ConstraintFailed", Level = LogLevel.Error, Message = "The output constraint of request {RequestId} threw; the request ends with an error.")]
        public static partial void ConstraintFailed(ILogger logger, string requestId, Exception exception);

        [LoggerMessage(EventId = 1004, EventName = "EngineUnhealthy", Level = LogLevel.Critical, Message = "{Failures} model steps in a row failed: the engine is unhealthy, fails its queue and refuses work for {CooldownSeconds} s.")]
        public static partial void Unhealthy(ILogger logger, int failures, double cooldownSeconds);

        [LoggerMessage(EventId = 1006, EventName = "BlockSizeRaised", Level = LogLevel.Information, Message = "KV block size {Requested} raised to {BlockSize}: the model's attention kernel reads whole pages of that many tokens.")]
        public static partial void BlockSizeRaised(ILogger logger, int requested, int blockSize);

        [LoggerMessage(EventId = 1005, EventName = "EngineRecovered", Level = LogLevel.Warning, Message = "A model step succeeded after {Failures} failed in a row: the engine is healthy.")]
        public static partial void Recovered(ILogger logger, int failures);
    }
}
