// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Serving;

/// <summary>
/// Whether this replica should get traffic, in one place for every probe and gate: the HTTP readiness probe, the
/// request gate that answers 503 to new work, and the gRPC health service. Ready means the engine loop runs and made
/// progress recently (see <see cref="IInferenceEngine.IsStalled"/>) and the server is not draining. It also
/// counts in-flight API requests so that draining can wait for them.
/// </summary>
internal sealed class ServingState
{
    private readonly IInferenceEngine _engine;
    private readonly TimeSpan _stallTimeout;
    private readonly TimeSpan _livenessStallTimeout;
    private readonly TaskCompletionSource _idle = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _drainStarted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _inFlight;
    private volatile bool _draining;

    /// <summary>
    /// Creates the state over <paramref name="engine"/>; the engine counts as stuck (not ready) after
    /// <paramref name="stallTimeout"/> without progress while it has work, and as dead (not live) after
    /// <paramref name="livenessStallTimeout"/> (default: never).
    /// </summary>
    public ServingState(IInferenceEngine engine, TimeSpan stallTimeout, TimeSpan? livenessStallTimeout = null)
    {
        _engine = engine;
        _stallTimeout = stallTimeout;
        _livenessStallTimeout = livenessStallTimeout ?? TimeSpan.MaxValue;
    }

    /// <summary>Raised once, when draining begins (for health services that push status changes, such as gRPC <c>Watch</c>).</summary>
    public event Action? DrainingStarted;

    /// <summary>True from the shutdown signal on: readiness is false and new API requests get 503.</summary>
    public bool IsDraining => _draining;

    /// <summary>
    /// True when the replica should get new requests: not draining, the engine loop runs and is not stuck, and it is
    /// healthy (not failing model step after step).
    /// </summary>
    public bool IsReady => AdmitsRequests && _engine.IsHealthy;

    /// <summary>
    /// Whether the gate lets API requests through: <see cref="IsReady"/> but for engine health. An unhealthy engine answers
    /// for itself (503 with the reason during its fault cooldown, then a probe of the model), so it can recover.
    /// </summary>
    public bool AdmitsRequests => !_draining && !_engine.IsStalled(_stallTimeout);

    /// <summary>Completes when draining begins (readiness of the engine is polled, not signalled).</summary>
    public Task Changed => _drainStarted.Task;

    /// <summary>API requests admitted and not yet finished.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Why the replica is not ready, for probe bodies and 503 messages; null when it is ready.</summary>
    public string? NotReadyReason => _draining
        ? "draining"
        : !_engine.IsRunning
            ? "engine stopped"
            : _engine.IsStalled(_stallTimeout)
                ? "engine stalled"
                : !_engine.IsHealthy ? "engine unhealthy: repeated model failures" : null;

    /// <summary>
    /// Why the process should be restarted, for <c>/health/live</c>; null while it is live. Only a stall counts: the
    /// engine has work and made no progress for longer than the liveness bound (a hung model call, a deadlock). A
    /// stopped loop while draining, or an engine failing its steps, is readiness' business: a restart would not help
    /// the first and the engine recovers from the second by itself.
    /// </summary>
    public string? NotLiveReason
        => _engine.ActiveRequests > 0 && _engine.SinceLastProgress is var idle && idle > _livenessStallTimeout
            ? $"engine stalled: no progress for {(long)idle.TotalSeconds} s with {_engine.ActiveRequests} request(s) in flight"
            : null;

    /// <summary>
    /// Whether the engine answers as vLLM's <c>GET /health</c> means it: the loop runs, is not stalled and is not failing
    /// its steps. Draining does not count (readiness says that).
    /// </summary>
    public bool EngineHealthy => _engine.IsRunning && !_engine.IsStalled(_stallTimeout) && _engine.IsHealthy;

    /// <summary>
    /// Counts a new API request in, unless the replica is not ready (then it counts nothing and returns false, and the
    /// caller answers 503). Counting first and checking after means draining never misses a request it must wait for.
    /// </summary>
    public bool TryEnter()
    {
        Interlocked.Increment(ref _inFlight);
        if (AdmitsRequests)
        {
            return true;
        }

        Exit();
        return false;
    }

    /// <summary>Counts a request out (pairs with a successful <see cref="TryEnter"/>).</summary>
    public void Exit()
    {
        if (Interlocked.Decrement(ref _inFlight) == 0 && _draining)
        {
            _idle.TrySetResult();
        }
    }

    /// <summary>Starts draining: readiness goes false at once. Idempotent.</summary>
    public void BeginDrain()
    {
        if (_draining)
        {
            return;
        }

        _draining = true;
        _drainStarted.TrySetResult();
        DrainingStarted?.Invoke();
        if (Volatile.Read(ref _inFlight) == 0)
        {
            _idle.TrySetResult();
        }
    }

    /// <summary>Completes when draining has begun and no API request is in flight.</summary>
    public Task WhenIdleAsync(CancellationToken cancellationToken) => _idle.Task.WaitAsync(cancellationToken);
}
