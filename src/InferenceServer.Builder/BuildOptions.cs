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

    /// <summary>
    /// Element type of weights, activations and KV cache: <c>fp32</c> (default; the dense graph of ADR 0002, CPU or
    /// CUDA), or <c>fp16</c> / <c>bf16</c> (the paged graph of ADR 0003, which needs <see cref="Device"/> <c>cuda</c>).
    /// </summary>
    public string DType { get; init; } = "fp32";

    /// <summary>Target execution provider: <c>cpu</c> (default) or <c>cuda</c>.</summary>
    public string Device { get; init; } = "cpu";
}
