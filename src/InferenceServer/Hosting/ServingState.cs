// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Scheduling;

namespace InferenceServer.Hosting;

/// <summary>
/// The one readiness source of the server: ready while the scheduler runs and the server is not draining. The HTTP
/// readiness probe and the gRPC health service both read it; <see cref="BeginDraining"/> (called when the host starts
/// stopping) turns both to "not serving" so that load balancers stop sending new work while in-flight requests finish.
/// </summary>
internal sealed class ServingState
{
    private readonly ContinuousBatchScheduler _scheduler;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _draining;

    /// <summary>Creates the state over <paramref name="scheduler"/>.</summary>
    public ServingState(ContinuousBatchScheduler scheduler) => _scheduler = scheduler;

    /// <summary>True once <see cref="BeginDraining"/> was called; never reset.</summary>
    public bool IsDraining => Volatile.Read(ref _draining) != 0;

    /// <summary>True while the scheduler runs and is healthy (not failing model step after step) and the server is not draining.</summary>
    public bool IsReady => !IsDraining && _scheduler.IsRunning && _scheduler.IsHealthy;

    /// <summary>Completes at the next change of <see cref="IsDraining"/> (readiness of the scheduler is polled, not signalled).</summary>
    public Task Changed => Volatile.Read(ref _changed).Task;

    /// <summary>Marks the server as draining: readiness probes answer "not serving" from now on. Idempotent.</summary>
    public void BeginDraining()
    {
        if (Interlocked.Exchange(ref _draining, 1) == 0)
        {
            var changed = Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            changed.TrySetResult();
        }
    }
}
