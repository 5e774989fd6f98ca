// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Checkpoint;
using InferenceServer.Onnx.Attention;
using InferenceServer.Onnx.Packaging;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The per-layer attention of a model (<see cref="ModelSpec.AttentionLayers"/>), from its <c>config.json</c> as the
/// builder's parser reads it (<see cref="ModelConfig.Checkpoint"/>): every architecture the builder builds (Llama,
/// Mistral, Qwen2/3, Phi-3, DeepSeek MLA and MoE, pruned <c>block_configs</c>, MoH) in the form the builder's graphs run
/// it, so that the split model and the attention kernels need not re-derive it.
/// </summary>
internal static class AttentionLayout
{
    /// <summary>
    /// One spec per decoder layer; empty when <c>config.json</c> does not say its heads (families the builder does not
    /// know, served from their own exports: their graphs carry the KV layout, <see cref="ModelSpec.KvLayers"/>).
    /// </summary>
    public static IReadOnlyList<AttentionLayerSpec> FromConfig(ModelConfig config)
    {
        if (config.Checkpoint is not { } checkpoint || checkpoint.HeadCount <= 0 || checkpoint.HeadDim <= 0)
        {
            return [];
        }

        var layers = new AttentionLayerSpec[checkpoint.LayerCount];
        for (var i = 0; i < layers.Length; i++)
        {
            var layer = checkpoint.Layers[i];
            layers[i] = !layer.HasAttention || layer.HeadCount <= 0 ? new AttentionLayerSpec(i, 0, 0, 0, 0, 0f, HeadMasked: false)
                : checkpoint.Mla is { } mla ? Latent(i, layer.HeadCount, mla, checkpoint.Rope)
                : Grouped(i, layer, checkpoint);
        }

        return layers;
    }

    /// <summary>GQA or MoH: RoPE on the first head_dim x partial_rotary_factor (even) entries; scores scaled by 1/sqrt(head_dim).</summary>
    private static AttentionLayerSpec Grouped(int index, LayerConfig layer, DecoderConfig config)
        => new(index, layer.HeadCount, layer.KvHeadCount, config.HeadDim, config.HeadDim, (float)(1.0 / Math.Sqrt(config.HeadDim)), HeadMasked: config.Moh is not null)
        {
            ActiveHeads = config.Moh is { } moh ? Math.Min(layer.HeadCount, moh.SharedHeads + moh.RoutedActiveHeads) : layer.HeadCount,
            RotaryWidth = config.RotaryDim,
        };

    /// <summary>
    /// MLA, absorbed (as the builder's graphs run it): every query head against one shared key [latent, rope key] whose
    /// latent is the value; scores scaled by 1/sqrt(nope + rope), times YaRN's mscale squared when it applies.
    /// </summary>
    private static AttentionLayerSpec Latent(int index, int heads, MlaConfig mla, RopeScaling rope)
    {
        var scale = mla.SoftmaxScale(rope);

        return new AttentionLayerSpec(index, heads, 1, mla.KvLoraRank + mla.QkRopeHeadDim, mla.KvLoraRank, (float)scale, HeadMasked: false, ValueIsKeyPrefix: true)
        {
            RotaryWidth = mla.QkRopeHeadDim,
            RotaryOffset = mla.KvLoraRank,
        };
    }
}
