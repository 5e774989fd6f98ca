// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// What the engine needs to know of a loaded model: vocabulary, context length and the per-layer KV layout.
/// </summary>
public sealed record ModelSpec
{
    /// <summary>Number of logits per position (the graph's vocabulary).</summary>
    public required int VocabularySize { get; init; }

    /// <summary>Longest sequence, prompt plus completion, the model accepts.</summary>
    public required int ContextLength { get; init; }

    /// <summary>One entry per cached attention layer, in graph order.</summary>
    public required IReadOnlyList<LayerKvSpec> KvLayers { get; init; }

    /// <summary>
    /// One entry per decoder layer (pruned layers included, <see cref="AttentionKind.None"/>): query and KV heads, head
    /// widths, kind and RoPE placement, from <c>config.json</c> (<see cref="AttentionLayout"/>); empty when the config
    /// does not describe its attention.
    /// </summary>
    internal IReadOnlyList<AttentionLayerSpec> AttentionLayers { get; init; } = [];

    /// <summary>Element type of the KV cache: float32 (dense-past graphs, split models), float16 or bfloat16 (paged CUDA graphs).</summary>
    public required KvElementType ElementType { get; init; }

    /// <summary>Bytes of one cached element of <see cref="ElementType"/>.</summary>
    internal int KvElementBytes => ElementType.Bytes();

    /// <summary>Bytes of KV cache one token occupies across all layers.</summary>
    public long KvBytesPerToken
    {
        get
        {
            long floats = 0;
            foreach (var layer in KvLayers)
            {
                floats += layer.KeyFloatsPerToken + layer.ValueFloatsPerToken;
            }

            return floats * KvElementBytes;
        }
    }
}
