// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>Storage element type of KV pages in host memory.</summary>
public enum KvStorage
{
    /// <summary>32-bit floats.</summary>
    Float32,

    /// <summary>IEEE half precision.</summary>
    Float16,

    /// <summary>bfloat16.</summary>
    BFloat16,
}
