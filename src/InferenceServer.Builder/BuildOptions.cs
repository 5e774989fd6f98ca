// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder;

/// <summary>What to build: a Hugging Face checkpoint folder into a servable ONNX model folder.</summary>
public sealed record BuildOptions
{
    /// <summary>The checkpoint folder: <c>config.json</c> and <c>*.safetensors</c> (sharded with an index, or not).</summary>
    public required string CheckpointDirectory { get; init; }

    /// <summary>
    /// The output folder; created if missing. The builder owns the files it writes there: they are replaced, and tokenizer
    /// or config files an earlier build copied that this checkpoint lacks are removed.
    /// </summary>
    public required string OutputDirectory { get; init; }

    /// <summary>Element type of weights, activations and KV cache. Default <c>fp32</c>, the only one built so far.</summary>
    public string DType { get; init; } = "fp32";

    /// <summary>Target execution provider. Default <c>cpu</c>, the only one built so far.</summary>
    public string Device { get; init; } = "cpu";
}
