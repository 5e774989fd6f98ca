// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Requests;

namespace InferenceServer.Engine.Scheduling;

/// <summary>
/// Bounded admission (queued sequences and their prompt tokens) and the fault breaker: after
/// <see cref="SchedulerOptions.MaxConsecutiveStepFailures"/> failed model steps in a row the engine is unhealthy, fails
/// everything it holds with a clear error and refuses work for <see cref="SchedulerOptions.FaultCooldown"/>; then it
/// accepts requests again, and the first step that succeeds makes it healthy.
/// </summary>
public sealed partial class ContinuousBatchScheduler
{
    private readonly Lock _admission = new();
    private int _queuedRequests;
    private long _queuedTokens;
    private int _consecutiveFailures;
    private long _unhealthySince;
    private volatile bool _loopFailed;

    /// <summary>Sequences accepted and not yet admitted to the batch (the bounded queue's length).</summary>
    internal int QueuedRequests => Volatile.Read(ref _queuedRequests);

    /// <summary>Prompt tokens of <see cref="QueuedRequests"/>.</summary>
    internal long QueuedTokens => Interlocked.Read(ref _queuedTokens);

    /// <summary>
    /// True when the queue is at either bound, so a new request would be refused: a cheap check for callers to make
    /// before reading and tokenizing a request. <see cref="Submit"/> decides exactly.
    /// </summary>
    public bool IsQueueFull
    {
        get
        {
            var queued = QueuedRequests;
            return queued >= _options.MaxQueuedRequests || (queued > 0 && QueuedTokens >= _options.MaxQueuedTokens);
        }
    }

    /// <summary>
    /// False while stopping, after the loop failed, and while unhealthy within <see cref="SchedulerOptions.FaultCooldown"/>
    /// of the last failed step; <see cref="Submit"/> then answers <see cref="SubmitResult.Unavailable"/>.
    /// </summary>
    public bool AcceptsWork
        => !_stopping.IsCancellationRequested && !_loopFailed
            && (IsHealthy || _time.GetElapsedTime(Interlocked.Read(ref _unhealthySince)) >= _options.FaultCooldown);

    private bool TryReserveQueue(int sequences, long tokens)
    {
        lock (_admission)
        {
            // The token bound gives way to an empty queue, so that no prompt is refused for ever for its length alone; the
            // sequence bound does not (a request with more choices than the queue holds is refused).
            var queued = QueuedRequests;
            if (queued + sequences > _options.MaxQueuedRequests || (queued > 0 && QueuedTokens + tokens > _options.MaxQueuedTokens))
            {
                return false;
            }

            Interlocked.Add(ref _queuedRequests, sequences);
            Interlocked.Add(ref _queuedTokens, tokens);
            return true;
        }
    }

    /// <summary>Stops counting <paramref name="sequence"/> against the queue: admitted to the batch, or finished while waiting.</summary>
    private void LeaveQueue(Sequence sequence)
    {
        if (sequence.Queued)
        {
            sequence.Queued = false;
            Interlocked.Decrement(ref _queuedRequests);
            Interlocked.Add(ref _queuedTokens, -sequence.PromptLength);
        }
    }

    /// <summary>Answers a sequence that was accepted after the loop stopped (it never reached the loop, so owns no blocks).</summary>
    private void AbandonUnqueued(Sequence sequence)
    {
        LeaveQueue(sequence);
        Interlocked.Decrement(ref _activeCount);
        sequence.Output.TryWrite(new GenerationUpdate(-1, string.Empty, FinishReason.Cancelled, sequence.PromptLength, 0, 0, "The server is shutting down."));
        sequence.Output.TryComplete();
    }

    private void OnStepSucceeded()
    {
        if (_consecutiveFailures != 0)
        {
            var failures = _consecutiveFailures;
            Volatile.Write(ref _consecutiveFailures, 0);
            Log.Recovered(_logger, failures);
        }
    }

    /// <summary>
    /// Counts a failed step; at the threshold the cooldown starts now. The start time is written before the count, so
    /// whoever sees the engine unhealthy also sees when its cooldown began.
    /// </summary>
    private int RecordStepFailure()
    {
        var failures = _consecutiveFailures + 1;
        if (failures >= _options.MaxConsecutiveStepFailures)
        {
            Interlocked.Exchange(ref _unhealthySince, _time.GetTimestamp());
        }

        Volatile.Write(ref _consecutiveFailures, failures);
        return failures;
    }

    /// <summary>
    /// After a failed step (counted by <see cref="RecordStepFailure"/>; its own rows, already out of the running set, are
    /// failed by the caller right after): at the threshold, fails everything else the engine holds
    /// with an "unavailable" error rather than running it into the same fault, and starts the cooldown.
    /// </summary>
    private void OnStepFailed(Exception exception, int failures)
    {
        if (failures < _options.MaxConsecutiveStepFailures)
        {
            return;
        }

        Log.Unhealthy(_logger, failures, _options.FaultCooldown.TotalSeconds);
        while (_incoming.Reader.TryRead(out var sequence))
        {
            _waiting.Add(sequence);
        }

        var message = $"The engine is unavailable: {failures} model steps in a row failed (last: {exception.Message}); retry later.";
        for (var i = _running.Count - 1; i >= 0; i--)
        {
            var sequence = _running[i];
            _running.RemoveAt(i);
            Finish(sequence, FinishReason.Cancelled, string.Empty, message);
        }

        for (var i = _waiting.Count - 1; i >= 0; i--)
        {
            var sequence = _waiting[i];
            _waiting.RemoveAt(i);
            Finish(sequence, FinishReason.Cancelled, string.Empty, message);
        }
    }
}
