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

    [LoggerMessage(EventId = 1007, EventName = "HostKvTierReady", Level = LogLevel.Information, Message = "Host KV tier: {Blocks} blocks of {BlockBytes} bytes ({Bytes} bytes) for preempted sequences and evicted prefix blocks; page-locked for queued copies: {Pinned}.")]
    public static partial void HostTierReady(ILogger logger, int blocks, int blockBytes, long bytes, bool pinned);

    [LoggerMessage(EventId = 1008, EventName = "HostKvTierUnavailable", Level = LogLevel.Warning, Message = "--host-kv-cache-memory is ignored: the {Runner} runner cannot copy KV blocks to the host yet; preemption recomputes.")]
    public static partial void HostTierUnavailable(ILogger logger, string runner);

    [LoggerMessage(EventId = 1009, EventName = "SequenceSwappedOut", Level = LogLevel.Debug, Message = "Request {RequestId} preempted: {Blocks} blocks of its {Computed} computed tokens copied to the host tier.")]
    public static partial void SwappedOut(ILogger logger, string requestId, int blocks, int computed);

    [LoggerMessage(EventId = 1010, EventName = "SequenceSwappedIn", Level = LogLevel.Debug, Message = "Request {RequestId} resumed: {Blocks} blocks copied back from the host tier; {Computed} tokens need no recompute.")]
    public static partial void SwappedIn(ILogger logger, string requestId, int blocks, int computed);

    [LoggerMessage(EventId = 1014, EventName = "SequenceSwapOutDeferred", Level = LogLevel.Debug, Message = "Request {RequestId} preempted: its {Blocks} full blocks stay in the device prefix cache (copied to the host tier only if their blocks are reused first).")]
    public static partial void SwapOutDeferred(ILogger logger, string requestId, int blocks);

    [LoggerMessage(EventId = 1012, EventName = "ModelWarmedUp", Level = LogLevel.Information, Message = "Warm-up: {Calls} model calls ({Steps} shapes: every captured decode batch, prompt steps up to --max-num-batched-tokens) in {Seconds:F1} s before taking requests.")]
    public static partial void WarmedUp(ILogger logger, int calls, int steps, double seconds);

    [LoggerMessage(EventId = 1013, EventName = "ModelWarmUpFailed", Level = LogLevel.Warning, Message = "Warm-up stopped at a failing model step; the server starts anyway, and requests of that shape may fail the same way.")]
    public static partial void WarmUpFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1015, EventName = "StepCaptureFailed", Level = LogLevel.Warning, Message = "CUDA graph capture of decode steps stopped: {Reason}; decode steps run uncaptured from now on, as with --cuda-graphs false (slower, and correct).")]
    public static partial void StepCaptureFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 1011, EventName = "KvPlacementInputs", Level = LogLevel.Debug, Message = "KV placement inputs (compute-local first): {Pools}.")]
    public static partial void PlacementInputs(ILogger logger, string pools);
}
