// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder;

/// <summary>What to build: a Hugging Face checkpoint folder into a servable ONNX model folder.</summary>
public sealed record BuildOptions
{
    /// <summary>The checkpoint folder: <c>config.json</c> and <c>*.safetensors</c> (sharded with an index, or not).</summary>
    public required string CheckpointDirectory { get; init; }

    /// <summary>The output folder; created if missing. Existing <c>model.onnx</c> / <c>model.onnx.data</c> are replaced.</summary>
    public required string OutputDirectory { get; init; }

    /// <summary>Element type of weights, activations and KV cache. Default <c>fp32</c>, the only one built so far.</summary>
    public string DType { get; init; } = "fp32";

    /// <summary>Target execution provider. Default <c>cpu</c>, the only one built so far.</summary>
    public string Device { get; init; } = "cpu";
}
