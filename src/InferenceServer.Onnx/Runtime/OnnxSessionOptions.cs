// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>How ONNX Runtime sessions are created.</summary>
public sealed class OnnxSessionOptions
{
    /// <summary>Threads for one operator; 0 (the default) lets ONNX Runtime use every core.</summary>
    public int IntraOpThreads { get; set; }

    /// <summary>
    /// Let ONNX Runtime's intra-op threads spin between operators. Default false: a serving process has other threads
    /// (HTTP, streaming) that need the cores between steps.
    /// </summary>
    public bool AllowSpinning { get; set; }

    /// <summary>
    /// Where the model runs: <c>auto</c> (the default: the CUDA execution provider on GPU 0 when it loads, else the CPU),
    /// <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.
    /// </summary>
    public string Device { get; set; } = "auto";

    /// <summary>
    /// Capture and replay decode steps of paged CUDA graphs as CUDA graphs (ONNX Runtime's <c>enable_cuda_graph</c>, one
    /// graph per padded batch size and block-table width): the host launches one graph instead of every kernel. On by
    /// default, as in vLLM (whose <c>--enforce-eager</c> is this set to false); ignored for other graphs and devices.
    /// </summary>
    public bool CudaGraphs { get; set; } = true;

    /// <summary>Graph optimization level: <c>all</c> (the default), <c>extended</c>, <c>basic</c> or <c>none</c>.</summary>
    public string GraphOptimization { get; set; } = "all";
}
