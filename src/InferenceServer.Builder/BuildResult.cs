// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder;

/// <summary>What a build wrote, and the figures the model info reports.</summary>
/// <param name="ModelPath">Full path of <c>model.onnx</c>.</param>
/// <param name="DataPath">Full path of <c>model.onnx.data</c>, the weights.</param>
/// <param name="Architecture">The checkpoint's <c>model_type</c>.</param>
/// <param name="LayerCount">Decoder layers.</param>
/// <param name="ParameterCount">Weights written (RoPE tables included).</param>
/// <param name="KvBytesPerToken">KV cache bytes one token costs across all layers.</param>
/// <param name="AttentionOp">The fused attention node type, such as <c>ai.onnx.Attention</c>.</param>
public sealed record BuildResult(
    string ModelPath,
    string DataPath,
    string Architecture,
    int LayerCount,
    long ParameterCount,
    long KvBytesPerToken,
    string AttentionOp)
{
    /// <summary>The graph flavor: <see cref="ModelBuilder.DenseGraph"/> or <see cref="ModelBuilder.PagedGraph"/>.</summary>
    public string Graph { get; init; } = ModelBuilder.DenseGraph;

    /// <summary>Element type of weights, activations and KV cache: <c>fp32</c>, <c>fp16</c> or <c>bf16</c>.</summary>
    public string DType { get; init; } = "fp32";

    /// <summary>The device built for: <c>cpu</c> or <c>cuda</c>.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>The split form's attention calls, one per attention layer (<see cref="BuildOptions.Split"/>), or null.</summary>
    internal IReadOnlyList<Graph.SplitAttentionLayer>? Split { get; init; }
}
