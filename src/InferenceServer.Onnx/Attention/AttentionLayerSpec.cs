// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>
/// The attention of one decoder layer, as a kernel sees it (<c>ModelSpec.AttentionLayers</c>, filled from
/// <c>config.json</c>; a split model's attention calls are its layers with attention): q is [T, QueryHeads x KeyWidth],
/// k [T, KvHeads x KeyWidth], v [T, KvHeads x ValueWidth], the output [T, QueryHeads x ValueWidth]. RoPE is applied in
/// the graph before attention (q and k arrive rotated, so a kernel does no position math); <see cref="RotaryWidth"/>
/// entries of each query and key head rotate, starting at <see cref="RotaryOffset"/>.
/// </summary>
/// <param name="Layer">The decoder layer.</param>
/// <param name="QueryHeads">Query heads; query head h reads KV head h / (QueryHeads / KvHeads). 0 for a layer without attention.</param>
/// <param name="KvHeads">Cached heads (0 for a layer without attention).</param>
/// <param name="KeyWidth">Width of a query and key head.</param>
/// <param name="ValueWidth">Width of a value and output head.</param>
/// <param name="Scale">Factor on the q.k scores.</param>
/// <param name="HeadMasked">Whether the segment before it outputs a Mixture-of-Head mask [T, QueryHeads].</param>
/// <param name="ValueIsKeyPrefix">Whether the value is the key's first ValueWidth entries (MLA's latent), stored once.</param>
internal sealed record AttentionLayerSpec(int Layer, int QueryHeads, int KvHeads, int KeyWidth, int ValueWidth, float Scale, bool HeadMasked, bool ValueIsKeyPrefix = false)
{
    /// <summary>What this layer's attention is: none (pruned), GQA, MoH (head-masked) or MLA (value inside the key).</summary>
    public AttentionKind Kind => QueryHeads == 0 ? AttentionKind.None
        : ValueIsKeyPrefix ? AttentionKind.Mla
        : HeadMasked ? AttentionKind.Moh
        : AttentionKind.Gqa;

    /// <summary>Query heads a token uses: for MoH the always-on heads plus the routed heads it activates, else <see cref="QueryHeads"/>.</summary>
    public int ActiveHeads { get; init; } = QueryHeads;

    /// <summary>Entries of each query and key head that RoPE rotates (before attention, in the graph); 0 without attention.</summary>
    public int RotaryWidth { get; init; }

    /// <summary>Where the rotated entries start in a key head: 0, or for MLA the latent's width (the key is [latent, rope key]).</summary>
    public int RotaryOffset { get; init; }

    /// <summary>The cache row shape of this layer.</summary>
    public KvLayerShape Shape => new(KvHeads, KeyWidth, ValueWidth, ValueIsKeyPrefix);

    /// <summary>Floats one token's query takes.</summary>
    public int QueryWidth => QueryHeads * KeyWidth;

    /// <summary>Floats one token's attention output takes.</summary>
    public int OutputWidth => QueryHeads * ValueWidth;

    /// <summary>Whether the layer has attention (and so a KV cache and, split, an attention call).</summary>
    public bool HasAttention => Kind != AttentionKind.None;
}
