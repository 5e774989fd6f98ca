// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>One micro-batch of a split step, as <see cref="SplitStep.RunOverlapped"/> drives it (ADR 0010).</summary>
internal interface IStepLane
{
    /// <summary>Packs <paramref name="batch"/>'s rows (this micro-batch), sizes the buffers and plans the lane's backends.</summary>
    void Begin(ForwardBatch batch);

    /// <summary>Runs dense segment <paramref name="s"/> for this micro-batch's rows and returns its Stopwatch ticks.</summary>
    long RunSegment(int s);

    /// <summary>Puts attention call <paramref name="call"/>'s q, k, v where host attention reads them (on the step's thread).</summary>
    void SendToHost(int call);

    /// <summary>Puts attention call <paramref name="call"/>'s output where the next segment reads it (on the step's thread).</summary>
    void ReturnFromHost(int call);

    /// <summary>Adds the attention ticks the worker recorded on this lane to <paramref name="ticks"/>, by device.</summary>
    void AddAttentionTicks(long[] ticks);

    /// <summary>The first <paramref name="length"/> floats of the lane's logit rows from its last step.</summary>
    ReadOnlySpan<float> Logits(int length);
}
