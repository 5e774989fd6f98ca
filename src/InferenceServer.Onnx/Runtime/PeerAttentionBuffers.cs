// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Attention;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The attention device's copies of a split step's q, k, v, MoH mask, output and log-sum-exp when attention runs on a
/// CUDA device N other than the compute GPU (<c>--device cuda:C --attention-device cuda:N</c>, ADR 0005): per attention
/// call q, k and v (and the mask) go C to N by peer copy, the output (and lse) come back N to C. The segments' buffers
/// stay on C; the backend binds these.
/// </summary>
internal sealed class PeerAttentionBuffers : IDisposable
{
    private readonly OrtMemoryInfo _memory;

    /// <summary>Creates the buffers on CUDA device <paramref name="device"/> in <paramref name="type"/> (float16 or bfloat16).</summary>
    public PeerAttentionBuffers(int device, TensorElementType type)
    {
        Device = device;
        _memory = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, device, OrtMemType.Default);
        Q = new DeviceTensorBuffer<ushort>(device, _memory, type, 1024);
        K = new DeviceTensorBuffer<ushort>(device, _memory, type, 1024);
        V = new DeviceTensorBuffer<ushort>(device, _memory, type, 1024);
        Attention = new DeviceTensorBuffer<ushort>(device, _memory, type, 1024);
        Mask = new DeviceTensorBuffer<float>(device, _memory, TensorElementType.Float, 64);
        Lse = new DeviceTensorBuffer<float>(device, _memory, TensorElementType.Float, 64);
    }

    /// <summary>The attention device.</summary>
    public int Device { get; }

    /// <summary>Queries on the attention device.</summary>
    public DeviceTensorBuffer<ushort> Q { get; }

    /// <summary>Keys on the attention device.</summary>
    public DeviceTensorBuffer<ushort> K { get; }

    /// <summary>Values on the attention device.</summary>
    public DeviceTensorBuffer<ushort> V { get; }

    /// <summary>The attention output on the attention device.</summary>
    public DeviceTensorBuffer<ushort> Attention { get; }

    /// <summary>The MoH head mask on the attention device.</summary>
    public DeviceTensorBuffer<float> Mask { get; }

    /// <summary>The log-sum-exp on the attention device (the mixed placement's).</summary>
    public DeviceTensorBuffer<float> Lse { get; }

    /// <summary>Sizes every buffer for a step of <paramref name="tokens"/> rows (before any view is bound).</summary>
    public void Reserve(int tokens, int queryWidth, int kvWidth, int outputWidth, int heads)
    {
        Q.Reserve(tokens * queryWidth);
        K.Reserve(tokens * kvWidth);
        V.Reserve(tokens * kvWidth);
        Attention.Reserve(tokens * outputWidth);
        Mask.Reserve(tokens * heads);
        Lse.Reserve(tokens * heads);
    }

    /// <summary>Copies call <paramref name="spec"/>'s q, k, v (and mask) of <paramref name="tokens"/> rows from the compute GPU's buffers.</summary>
    public void Send(AttentionLayerSpec spec, int tokens, DeviceTensorBuffer<ushort> q, DeviceTensorBuffer<ushort> k, DeviceTensorBuffer<ushort> v, DeviceTensorBuffer<float>? mask)
    {
        Q.CopyFromPeer(q, tokens * spec.QueryWidth);
        K.CopyFromPeer(k, tokens * spec.KvHeads * spec.KeyWidth);
        if (!spec.ValueIsKeyPrefix)
        {
            V.CopyFromPeer(v, tokens * spec.KvHeads * spec.ValueWidth);
        }

        if (spec.HeadMasked && mask is not null)
        {
            Mask.CopyFromPeer(mask, tokens * spec.QueryHeads);
        }
    }

    /// <summary>Copies the output (and, when <paramref name="lse"/> is given, the log-sum-exp) back to the compute GPU's buffers.</summary>
    public void Receive(AttentionLayerSpec spec, int tokens, DeviceTensorBuffer<ushort> output, DeviceTensorBuffer<float>? lse)
    {
        output.CopyFromPeer(Attention, tokens * spec.OutputWidth);
        lse?.CopyFromPeer(Lse, tokens * spec.QueryHeads);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Q.Dispose();
        K.Dispose();
        V.Dispose();
        Attention.Dispose();
        Mask.Dispose();
        Lse.Dispose();
        _memory.Dispose();
    }
}
