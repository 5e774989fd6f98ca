// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>Where one model step's time went, in milliseconds.</summary>
/// <param name="Gather">Filling token inputs and assembling the dense past tensors from the KV pages.</param>
/// <param name="Run">ONNX Runtime's session run, input binding included.</param>
/// <param name="Scatter">Copying the last-position logits out and the new KV back into the pages.</param>
public readonly record struct StepTiming(double Gather, double Run, double Scatter);
