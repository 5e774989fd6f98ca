// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Attention;
using InferenceServer.Onnx.Packaging;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The per-layer attention of a model (<see cref="ModelSpec.AttentionLayers"/>), from its <c>config.json</c>: every
/// architecture the builder builds (Llama, Mistral, Qwen2/3, Phi-3, DeepSeek MLA and MoE, pruned <c>block_configs</c>,
/// MoH) in the form the builder's graphs run it, so that the split model and the attention kernels need not re-derive it.
/// </summary>
internal static class AttentionLayout
{
    /// <summary>
    /// One spec per decoder layer; empty when <c>config.json</c> does not say its heads (families the builder does not
    /// know, served from their own exports: their graphs carry the KV layout, <see cref="ModelSpec.KvLayers"/>).
    /// </summary>
    public static IReadOnlyList<AttentionLayerSpec> FromConfig(ModelConfig config)
    {
        if (config.HeadCount is not { } heads || heads <= 0 || config.HeadDim is not { } headDim || headDim <= 0)
        {
            return [];
        }

        var layers = new AttentionLayerSpec[config.LayerCount];
        for (var i = 0; i < layers.Length; i++)
        {
            var (queryHeads, kvHeads) = config.LayerHeads is { } perLayer ? perLayer[i] : (heads, config.KvHeadCount ?? heads);
            layers[i] = queryHeads <= 0 ? new AttentionLayerSpec(i, 0, 0, 0, 0, 0f, HeadMasked: false)
                : config.Mla is { } mla ? Latent(i, queryHeads, mla, config)
                : Grouped(i, queryHeads, kvHeads, headDim, config);
        }

        return layers;
    }

    /// <summary>GQA or MoH: RoPE on the first head_dim x partial_rotary_factor (even) entries; scores scaled by 1/sqrt(head_dim).</summary>
    private static AttentionLayerSpec Grouped(int layer, int heads, int kvHeads, int headDim, ModelConfig config)
        => new(layer, heads, kvHeads, headDim, headDim, (float)(1.0 / Math.Sqrt(headDim)), HeadMasked: config.Moh is not null)
        {
            ActiveHeads = config.Moh is { } moh ? Math.Min(heads, moh.SharedHeads + moh.RoutedActiveHeads) : heads,
            RotaryWidth = (int)(headDim * config.PartialRotaryFactor) / 2 * 2,
        };

    /// <summary>
    /// MLA, absorbed (as the builder's graphs run it): every query head against one shared key [latent, rope key] whose
    /// latent is the value; scores scaled by 1/sqrt(nope + rope), times YaRN's mscale squared when it applies.
    /// </summary>
    private static AttentionLayerSpec Latent(int layer, int heads, (int KvLoraRank, int QkNopeHeadDim, int QkRopeHeadDim, int VHeadDim) mla, ModelConfig config)
    {
        var scale = 1.0 / Math.Sqrt(mla.QkNopeHeadDim + mla.QkRopeHeadDim);
        if (config.RopeType == "yarn" && config.MscaleAllDim is { } mscaleAllDim && config.RopeFactor > 1)
        {
            var mscale = (0.1 * mscaleAllDim * Math.Log(config.RopeFactor)) + 1.0;
            scale *= mscale * mscale;
        }

        return new AttentionLayerSpec(layer, heads, 1, mla.KvLoraRank + mla.QkRopeHeadDim, mla.KvLoraRank, (float)scale, HeadMasked: false, ValueIsKeyPrefix: true)
        {
            RotaryWidth = mla.QkRopeHeadDim,
            RotaryOffset = mla.KvLoraRank,
        };
    }
}
