// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Inspection;

/// <summary>
/// Which ONNX Runtime execution providers run an op type, from a small static table (this project does not load ONNX
/// Runtime): the ops the builder and the usual exports use. The CPU provider has these ops' fp32 kernels only.
/// </summary>
internal static class OpProviders
{
    /// <summary>Said of ops that run on the CPU and CUDA providers.</summary>
    public const string CpuAndCuda = "CPU+CUDA";

    /// <summary>Said of ops only the CUDA provider runs.</summary>
    public const string CudaOnly = "CUDA only";

    private static readonly HashSet<string> CudaOnlyOps = new(StringComparer.Ordinal)
    {
        ModelBuilder.PagedAttentionOp,
    };

    /// <summary>The providers that run qualified op <paramref name="op"/> (such as <c>com.microsoft.PagedAttention</c>).</summary>
    public static string For(string op) => CudaOnlyOps.Contains(op) ? CudaOnly : CpuAndCuda;
}
