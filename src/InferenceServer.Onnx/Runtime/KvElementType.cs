// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Element type of a KV cache (<see cref="ModelSpec.ElementType"/>), read once from the graph; its name as logs and
/// <c>GetModelInfo</c> print it is <see cref="KvElementTypeExtensions.ToName"/>.
/// </summary>
public enum KvElementType
{
    /// <summary>32-bit floats: dense-past graphs (host pages) and split models.</summary>
    Float32,

    /// <summary>IEEE half precision: paged CUDA graphs built with <c>--dtype fp16</c>.</summary>
    Float16,

    /// <summary>bfloat16: paged CUDA graphs built with <c>--dtype bf16</c>.</summary>
    BFloat16,
}
