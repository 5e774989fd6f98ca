// Licensed under the MIT License. See LICENSE in the repository root.
using Microsoft.Extensions.Logging;

namespace InferenceServer.Engine.Scheduling;

/// <summary>The scheduler's log messages (event ids 1000-1099): its loop, the token pipeline and the fault breaker.</summary>
internal static partial class SchedulerLog
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

    [LoggerMessage(EventId = 1005, EventName = "EngineRecovered", Level = LogLevel.Warning, Message = "A model step succeeded after {Failures} failed in a row: the engine is healthy.")]
    public static partial void Recovered(ILogger logger, int failures);

    [LoggerMessage(EventId = 1006, EventName = "BlockSizeRaised", Level = LogLevel.Information, Message = "KV block size {Requested} raised to {BlockSize}: the model's attention kernel reads whole pages of that many tokens.")]
    public static partial void BlockSizeRaised(ILogger logger, int requested, int blockSize);
}
