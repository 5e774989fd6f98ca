// Licensed under the MIT License. See LICENSE in the repository root.
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Runtime;

/// <summary>Names, sizes and ONNX Runtime types of <see cref="KvElementType"/>.</summary>
public static class KvElementTypeExtensions
{
    /// <summary><c>float32</c>, <c>float16</c> or <c>bfloat16</c> (the ONNX names, as <c>GetModelInfo</c>'s <c>kv_element_type</c> says them).</summary>
    public static string ToName(this KvElementType type) => type switch
    {
        KvElementType.Float16 => "float16",
        KvElementType.BFloat16 => "bfloat16",
        _ => "float32",
    };

    /// <summary>Bytes of one element.</summary>
    internal static int Bytes(this KvElementType type) => type == KvElementType.Float32 ? sizeof(float) : 2;

    /// <summary>The KV element type of an ONNX Runtime tensor type (float16 or bfloat16 pools; anything else is float32).</summary>
    internal static KvElementType FromTensor(TensorElementType type) => type switch
    {
        TensorElementType.Float16 => KvElementType.Float16,
        TensorElementType.BFloat16 => KvElementType.BFloat16,
        _ => KvElementType.Float32,
    };

    /// <summary>The host pools' storage for this element type (<see cref="Attention.HostKvPool"/>).</summary>
    internal static Attention.KvStorage ToStorage(this KvElementType type) => type switch
    {
        KvElementType.Float16 => Attention.KvStorage.Float16,
        KvElementType.BFloat16 => Attention.KvStorage.BFloat16,
        _ => Attention.KvStorage.Float32,
    };
}
