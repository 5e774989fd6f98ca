// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>Storage element type of KV pages in host memory.</summary>
public enum KvStorage
{
    /// <summary>IEEE single precision, 4 bytes an element.</summary>
    Float32,

    /// <summary>IEEE half precision, 2 bytes an element; written with round-to-nearest-even.</summary>
    Float16,

    /// <summary>bfloat16 (the upper half of a float), 2 bytes an element; written with round-to-nearest-even.</summary>
    BFloat16,
}
