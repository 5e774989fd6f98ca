// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Scheduling;

/// <summary>What <see cref="ContinuousBatchScheduler.Submit"/> did with a request.</summary>
public enum SubmitResult
{
    /// <summary>Every sequence was queued.</summary>
    Accepted = 0,

    /// <summary>
    /// Nothing was queued: the queue holds <see cref="SchedulerOptions.MaxQueuedRequests"/> sequences or
    /// <see cref="SchedulerOptions.MaxQueuedTokens"/> prompt tokens (HTTP 429, gRPC <c>RESOURCE_EXHAUSTED</c>).
    /// </summary>
    QueueFull,

    /// <summary>
    /// Nothing was queued: the engine is stopping or unhealthy after repeated model failures (HTTP 503, gRPC
    /// <c>UNAVAILABLE</c>).
    /// </summary>
    Unavailable,
}
