// Licensed under the MIT License. See LICENSE in the repository root.
using Microsoft.Extensions.Hosting;

namespace InferenceServer.Engine.Scheduling;

/// <summary>Starts the scheduler loop with the host and stops it (ending in-flight requests) when the host stops.</summary>
internal sealed class SchedulerHostedService(ContinuousBatchScheduler scheduler) : IHostedService
{
    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken)
    {
        scheduler.Start();
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => scheduler.DisposeAsync().AsTask();
}
