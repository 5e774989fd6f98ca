// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Scheduling;

/// <summary>
/// What the loop counts and other threads read (health checks, gauges, tests): requests in flight, the running batch,
/// KV blocks in use, steps, preemptions and the last time the loop made progress. Written on the loop (requests in
/// flight also on submission), read anywhere.
/// </summary>
internal sealed class SchedulerCounters
{
    private int _active;
    private int _running;
    private int _usedBlocks;
    private long _steps;
    private long _preemptions;
    private long _loadWaits;
    private long _lastProgressAt;
    private long _recomputedTokens;

    /// <summary>Requests admitted or waiting but not finished.</summary>
    public int Active => Volatile.Read(ref _active);

    /// <summary>Requests in the running batch as of the last step.</summary>
    public int Running
    {
        get => Volatile.Read(ref _running);
        set => Volatile.Write(ref _running, value);
    }

    /// <summary>KV blocks owned by sequences.</summary>
    public int UsedBlocks
    {
        get => Volatile.Read(ref _usedBlocks);
        set => Volatile.Write(ref _usedBlocks, value);
    }

    /// <summary>Model steps run.</summary>
    public long Steps => Interlocked.Read(ref _steps);

    /// <summary>Sequences preempted.</summary>
    public long Preemptions => Interlocked.Read(ref _preemptions);

    /// <summary>Iterations that had nothing to run but sequences whose KV was still being copied in, and waited for it.</summary>
    public long LoadWaits => Interlocked.Read(ref _loadWaits);

    /// <summary>Tokens a resumed sequence computes again, having had their KV before it was preempted.</summary>
    public long RecomputedTokens => Interlocked.Read(ref _recomputedTokens);

    /// <summary>When the loop last made progress (<see cref="TimeProvider.GetTimestamp"/>).</summary>
    public long LastProgressAt
    {
        get => Interlocked.Read(ref _lastProgressAt);
        set => Interlocked.Exchange(ref _lastProgressAt, value);
    }

    /// <summary>
    /// Counts a request accepted at <paramref name="now"/>. An idle engine's stall clock starts here: the loop has been
    /// waiting for work, not failing to progress, so the first request after a quiet spell restarts the clock before it
    /// counts (otherwise every request of a burst that arrives before the loop wakes would find "work and no progress for
    /// as long as it was idle" and be refused as stalled). A busy engine's clock is left alone: new work must not hide a
    /// stall of the work it already has.
    /// </summary>
    public void RequestStarted(long now)
    {
        if (Volatile.Read(ref _active) == 0)
        {
            LastProgressAt = now;
        }

        Interlocked.Increment(ref _active);
    }

    /// <summary>Counts a request finished.</summary>
    public void RequestEnded() => Interlocked.Decrement(ref _active);

    /// <summary>Counts a model step.</summary>
    public void StepRan() => Interlocked.Increment(ref _steps);

    /// <summary>Counts a preemption.</summary>
    public void Preempted() => Interlocked.Increment(ref _preemptions);

    /// <summary>Counts an iteration that waited for copy-ins (nothing else to run).</summary>
    public void LoadWaited() => Interlocked.Increment(ref _loadWaits);

    /// <summary>Counts <paramref name="tokens"/> recomputed after a preemption.</summary>
    public void Recomputed(int tokens) => Interlocked.Add(ref _recomputedTokens, tokens);
}
