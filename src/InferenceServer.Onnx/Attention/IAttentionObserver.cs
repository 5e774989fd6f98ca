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
}
