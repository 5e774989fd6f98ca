// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>What attention a decoder layer runs (<see cref="AttentionLayerSpec.Kind"/>).</summary>
internal enum AttentionKind
{
    /// <summary>No attention: a pruned layer (<c>block_configs</c>' <c>attention.no_op</c>); no KV cache, no attention call.</summary>
    None,

    /// <summary>Grouped-query (or multi-head) attention over k and v.</summary>
    Gqa,

    /// <summary>Mixture-of-Head attention: as <see cref="Gqa"/>, with only the routed heads a 0/1 mask keeps on per token.</summary>
    Moh,

    /// <summary>DeepSeek's latent attention, absorbed: one KV head [latent, rope key] whose first entries are the value.</summary>
    Mla,
}
