// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Safetensors;

/// <summary>The element types the builder reads from safetensors files.</summary>
internal enum SafetensorsDType
{
    /// <summary>IEEE 754 binary32 (<c>F32</c>).</summary>
    F32,

    /// <summary>IEEE 754 binary16 (<c>F16</c>).</summary>
    F16,

    /// <summary>bfloat16 (<c>BF16</c>): the upper half of a binary32.</summary>
    BF16,
}
