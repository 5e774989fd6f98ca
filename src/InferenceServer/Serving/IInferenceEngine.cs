// Licensed under the MIT License. See LICENSE in the repository root.
using System.Threading.Channels;
using InferenceServer.Engine;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;

namespace InferenceServer.Serving;

/// <summary>
/// What the endpoints (OpenAI HTTP and gRPC) and the readiness state need of the engine: the served model, admission,
/// submission, and the loop's health. The composition root binds it to the one <see cref="ContinuousBatchScheduler"/>;
/// request code depends on this, not on the scheduler.
/// </summary>
internal interface IInferenceEngine
{
    /// <summary>The served model: its name, tokenizer, limits and generation defaults.</summary>
    ServedModel Model { get; }

    /// <summary>Whether the engine takes new work: false while it stops, or after repeated model failures until it recovers.</summary>
    bool AcceptsWork { get; }

    /// <summary>Whether the queue is at one of its bounds, so that a new request would be refused.</summary>
    bool IsQueueFull { get; }

    /// <summary>Whether the engine loop runs.</summary>
    bool IsRunning { get; }

    /// <summary>Whether the engine is not failing model step after step.</summary>
    bool IsHealthy { get; }

    /// <summary>Requests admitted and not yet finished.</summary>
    int ActiveRequests { get; }

    /// <summary>Time since the loop last made progress.</summary>
    TimeSpan SinceLastProgress { get; }

    /// <summary>True when the loop stopped, or has work and made no progress for longer than <paramref name="threshold"/>.</summary>
    bool IsStalled(TimeSpan threshold);

    /// <summary>
    /// Submits one request's sequences together (all or none); each gets its update channel in
    /// <paramref name="updates"/>. Cancelling <paramref name="cancellationToken"/> ends them and frees their KV blocks.
    /// </summary>
    SubmitResult Submit(IReadOnlyList<GenerationRequest> requests, ChannelReader<GenerationUpdate>[] updates, CancellationToken cancellationToken);
}
