// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>
/// Told by the split runner what each step's attention cost (ADR 0005): the engine's metrics implement it
/// (<c>inference_attention_seconds</c> by device, <c>inference_attention_offload_bytes_total</c>). Called on the step's thread.
/// </summary>
internal interface IAttentionObserver
{
    /// <summary>One memory device attended for <paramref name="seconds"/> in a step (all layers).</summary>
    void AttentionStep(string device, double seconds);

    /// <summary>A step sent <paramref name="bytes"/> to and from the memory devices (q, k, v out, attention outputs back).</summary>
    void AttentionOffloaded(long bytes);

    /// <summary>
    /// One split step's timing (ADR 0010): <paramref name="stepSeconds"/> of wall time, of which the step's thread ran dense
    /// segments for <paramref name="denseSeconds"/> and host attention ran for <paramref name="attentionSeconds"/>;
    /// <paramref name="overlapped"/>: the step ran as two micro-batches, so the two busy times overlap.
    /// </summary>
    void SplitStep(bool overlapped, double stepSeconds, double denseSeconds, double attentionSeconds);
}
