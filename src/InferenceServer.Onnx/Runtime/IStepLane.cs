// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>One micro-batch of a split step, as <see cref="SplitStep.RunOverlapped"/> drives it (ADR 0010).</summary>
internal interface IStepLane
{
    /// <summary>Runs dense segment <paramref name="s"/> for this micro-batch's rows and returns its Stopwatch ticks.</summary>
    long RunSegment(int s);

    /// <summary>Puts attention call <paramref name="call"/>'s q, k, v where host attention reads them (on the step's thread).</summary>
    void SendToHost(int call);

    /// <summary>Puts attention call <paramref name="call"/>'s output where the next segment reads it (on the step's thread).</summary>
    void ReturnFromHost(int call);
}
