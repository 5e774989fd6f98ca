// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>
/// One attention call of a split model (ADR 0005), read from <c>genai_config.json</c>'s <c>inference_server.split.attention</c>:
/// q is [T, QueryHeads x KeyWidth], k [T, KvHeads x KeyWidth], v [T, KvHeads x ValueWidth], the output
/// [T, QueryHeads x ValueWidth].
/// </summary>
/// <param name="Layer">The decoder layer.</param>
/// <param name="QueryHeads">Query heads; query head h reads KV head h / (QueryHeads / KvHeads).</param>
/// <param name="KvHeads">Cached heads.</param>
/// <param name="KeyWidth">Width of a query and key head.</param>
/// <param name="ValueWidth">Width of a value and output head.</param>
/// <param name="Scale">Factor on the q.k scores.</param>
/// <param name="HeadMasked">Whether the segment before it outputs a Mixture-of-Head mask [T, QueryHeads].</param>
/// <param name="ValueIsKeyPrefix">Whether the value is the key's first ValueWidth entries (MLA's latent), stored once.</param>
internal sealed record AttentionLayerSpec(int Layer, int QueryHeads, int KvHeads, int KeyWidth, int ValueWidth, float Scale, bool HeadMasked, bool ValueIsKeyPrefix = false)
{
    /// <summary>The cache row shape of this layer.</summary>
    public KvLayerShape Shape => new(KvHeads, KeyWidth, ValueWidth, ValueIsKeyPrefix);

    /// <summary>Floats one token's query takes.</summary>
    public int QueryWidth => QueryHeads * KeyWidth;

    /// <summary>Floats one token's attention output takes.</summary>
    public int OutputWidth => QueryHeads * ValueWidth;
}
