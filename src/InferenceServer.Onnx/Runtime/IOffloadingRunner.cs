// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Runtime;

/// <summary>A runner of a split model (ADR 0005), on the CPU (<see cref="SplitRunner"/>) or CUDA (<see cref="CudaSplitRunner"/>), that reports each step's attention cost.</summary>
internal interface IOffloadingRunner
{
    /// <summary>Told each step's attention time per memory device and the bytes that crossed devices (the engine's metrics), or null.</summary>
    IAttentionObserver? Observer { get; set; }

    /// <summary>Stopwatch ticks each attention device (in <c>--attention-device</c> order, one per KV pool) spent in the last call.</summary>
    ReadOnlySpan<long> LastStepAttentionTicks { get; }

    /// <summary>
    /// Why the runner stopped capturing decode steps as CUDA graphs (a capture failed: steps run uncaptured from then on,
    /// ADR 0011), or null: never failed, or the runner does not capture. The scheduler logs it once.
    /// </summary>
    string? CaptureFailure => null;

    /// <summary>Whether greedy decode steps are captured as CUDA graphs (ADR 0011: the local split), so the scheduler warms them up before serving (<c>--warmup</c> auto).</summary>
    bool CapturesSteps => false;
}
