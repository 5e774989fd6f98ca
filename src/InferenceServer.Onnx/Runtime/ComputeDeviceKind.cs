// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>What kind of processor a <see cref="ComputeDevice"/> is.</summary>
public enum ComputeDeviceKind
{
    /// <summary>The host's cores (ONNX Runtime's CPU execution provider; host memory).</summary>
    Cpu,

    /// <summary>A CUDA GPU (ONNX Runtime's CUDA execution provider; device memory).</summary>
    Cuda,
}
