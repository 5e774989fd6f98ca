// Licensed under the MIT License. See LICENSE in the repository root.
using System.Threading.Channels;
using InferenceServer.Engine;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Serving;

namespace InferenceServer.Hosting;

/// <summary>
/// Binds the serving layer's <see cref="IInferenceEngine"/> to the engine's <see cref="ContinuousBatchScheduler"/>: each
/// member forwards to the scheduler's of the same name. Only the composition root knows the concrete scheduler.
/// </summary>
internal sealed class SchedulerEngine(ContinuousBatchScheduler scheduler) : IInferenceEngine
{
    /// <inheritdoc />
    public ServedModel Model => scheduler.Model;

    /// <inheritdoc />
    public bool AcceptsWork => scheduler.AcceptsWork;

    /// <inheritdoc />
    public bool IsQueueFull => scheduler.IsQueueFull;

    /// <inheritdoc />
    public bool IsRunning => scheduler.IsRunning;

    /// <inheritdoc />
    public bool IsHealthy => scheduler.IsHealthy;

    /// <inheritdoc />
    public int ActiveRequests => scheduler.ActiveRequests;

    /// <inheritdoc />
    public TimeSpan SinceLastProgress => scheduler.SinceLastProgress;

    /// <inheritdoc />
    public bool IsStalled(TimeSpan threshold) => scheduler.IsStalled(threshold);

    /// <inheritdoc />
    public SubmitResult Submit(IReadOnlyList<GenerationRequest> requests, ChannelReader<GenerationUpdate>[] updates, CancellationToken cancellationToken)
        => scheduler.Submit(requests, updates, cancellationToken);
}
