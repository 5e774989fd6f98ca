// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// A loaded decoder graph, whichever its I/O convention: the Optimum-style dense-past graphs (<see cref="OnnxDecoderModel"/>,
/// run over host KV pages) or the paged graphs built for CUDA (<see cref="PagedDecoderModel"/>, KV pools on the device).
/// It knows its spec and where it runs, and creates the runner that owns the KV store.
/// </summary>
public interface IDecoderModel : IDisposable
{
    /// <summary>Vocabulary, context length and KV layout.</summary>
    ModelSpec Spec { get; }

    /// <summary>Where the model runs: <c>cpu</c> or <c>cuda:N</c>.</summary>
    ComputeDevice Device { get; }

    /// <summary>
    /// Where the KV cache lives: the model's <see cref="Device"/> when it runs fused, else the memory devices that hold
    /// it and run attention (<c>--attention-device</c>, ADR 0005), in the order their block ranges follow each other.
    /// </summary>
    IReadOnlyList<ComputeDevice> KvDevices => [Device];

    /// <summary>Why <c>auto</c> chose the CPU (the CUDA provider's load error), or null.</summary>
    string? DeviceNote { get; }

    /// <summary>What the load-time graph rewrite changed (<c>--onnx-graph-rewrite</c>, ADR 0004), or null when it changed nothing.</summary>
    string? GraphNote { get; }

    /// <summary>
    /// Bytes of memory the KV store may take when <c>--kv-cache-memory</c> is a fraction: the device's free memory after
    /// the weights loaded for a device store, or null for host memory (the engine then uses the process's available memory).
    /// </summary>
    long? DeviceFreeMemory { get; }

    /// <summary>
    /// The device's total memory, for <c>--gpu-memory-utilization</c> (a fraction of the whole device, as vLLM means it),
    /// or null for a host store.
    /// </summary>
    long? DeviceTotalMemory { get; }

    /// <summary>The block size the store uses for a configured <paramref name="requested"/> one (a kernel may need larger blocks).</summary>
    int ChooseBlockSize(int requested);

    /// <summary>Creates the runner over a KV store of <paramref name="blockCount"/> blocks of <paramref name="blockSize"/> tokens.</summary>
    IModelRunner CreateRunner(int blockCount, int blockSize);
}
