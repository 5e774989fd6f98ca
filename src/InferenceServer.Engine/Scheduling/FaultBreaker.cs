// Licensed under the MIT License. See LICENSE in the repository root.
using Microsoft.Extensions.Logging;

namespace InferenceServer.Engine.Scheduling;

/// <summary>
/// The engine's fault breaker: after <see cref="SchedulerOptions.MaxConsecutiveStepFailures"/> failed model steps in a
/// row the engine is unhealthy and refuses work for <see cref="SchedulerOptions.FaultCooldown"/>; then it accepts requests
/// again to probe the model, and the first step that succeeds makes it healthy. The loop records; any thread reads.
/// </summary>
internal sealed class FaultBreaker
{
    private readonly int _threshold;
    private readonly TimeSpan _cooldown;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private int _consecutiveFailures;
    private long _unhealthySince;

    /// <summary>Creates a healthy breaker that opens after <paramref name="threshold"/> failures in a row for <paramref name="cooldown"/>.</summary>
    public FaultBreaker(int threshold, TimeSpan cooldown, TimeProvider time, ILogger logger)
    {
        _threshold = threshold;
        _cooldown = cooldown;
        _time = time;
        _logger = logger;
    }

    /// <summary>Model steps that failed in a row (0 after any success).</summary>
    public int ConsecutiveFailures => Volatile.Read(ref _consecutiveFailures);

    /// <summary>False from the threshold's failure until a step succeeds.</summary>
    public bool IsHealthy => ConsecutiveFailures < _threshold;

    /// <summary>True when healthy, or unhealthy for at least the cooldown (the engine may probe the model again).</summary>
    public bool AllowsWork => IsHealthy || _time.GetElapsedTime(Interlocked.Read(ref _unhealthySince)) >= _cooldown;

    /// <summary>Records a successful step: the count goes back to 0 (logged when it was not).</summary>
    public void RecordSuccess()
    {
        if (_consecutiveFailures != 0)
        {
            var failures = _consecutiveFailures;
            Volatile.Write(ref _consecutiveFailures, 0);
            SchedulerLog.Recovered(_logger, failures);
        }
    }

    /// <summary>
    /// Counts a failed step; true when the engine is now unhealthy (the cooldown starts now, and the caller fails
    /// everything it holds). The start time is written before the count, so whoever sees the engine unhealthy also sees
    /// when its cooldown began.
    /// </summary>
    public bool RecordFailure(out int failures)
    {
        failures = _consecutiveFailures + 1;
        var tripped = failures >= _threshold;
        if (tripped)
        {
            Interlocked.Exchange(ref _unhealthySince, _time.GetTimestamp());
        }

        Volatile.Write(ref _consecutiveFailures, failures);
        if (tripped)
        {
            SchedulerLog.Unhealthy(_logger, failures, _cooldown.TotalSeconds);
        }

        return tripped;
    }
}
