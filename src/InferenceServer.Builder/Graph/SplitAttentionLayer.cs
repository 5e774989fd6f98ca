// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Graph;

/// <summary>
/// One attention call of a split build (ADR 0005): what the segment before it hands an attention backend and what the
/// segment after it takes back, recorded in <c>genai_config.json</c>'s <c>inference_server.split.attention</c>.
/// </summary>
/// <param name="Layer">The decoder layer.</param>
/// <param name="QueryHeads">Query heads: <c>q</c> is [T, QueryHeads x KeyWidth], the output [T, QueryHeads x ValueWidth].</param>
/// <param name="KvHeads">KV heads: <c>k</c> is [T, KvHeads x KeyWidth], <c>v</c> [T, KvHeads x ValueWidth].</param>
/// <param name="KeyWidth">Width of a query and key head.</param>
/// <param name="ValueWidth">Width of a value and output head.</param>
/// <param name="Scale">The factor applied to the q.k scores before the softmax.</param>
/// <param name="Kind"><see cref="Gqa"/>, <see cref="Moh"/> when the segment also outputs <c>head_mask</c> [T, QueryHeads], or <see cref="Mla"/>.</param>
internal sealed record SplitAttentionLayer(int Layer, int QueryHeads, int KvHeads, int KeyWidth, int ValueWidth, double Scale, string Kind)
{
    /// <summary>Grouped-query (or multi-head) attention over k and v.</summary>
    public const string Gqa = "gqa";

    /// <summary>Mixture-of-Head attention: as <see cref="Gqa"/>, with a 0/1 mask of the heads each token uses.</summary>
    public const string Moh = "moh";

    /// <summary>
    /// DeepSeek's latent attention, absorbed: one KV head whose key is [latent, rope key] (KeyWidth) and whose value is
    /// the key's first ValueWidth entries (the latent), which a backend stores once.
    /// </summary>
    public const string Mla = "mla";
}
