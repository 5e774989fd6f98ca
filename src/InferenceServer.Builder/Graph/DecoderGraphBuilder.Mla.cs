// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Checkpoint;
using static InferenceServer.Builder.Graph.OnnxGraphWriter;

namespace InferenceServer.Builder.Graph;

/// <summary>
/// DeepSeek-V3 Multi-head Latent Attention with the up-projections absorbed. Per token the cache keeps only the
/// normalized latent <c>c</c> (kv_lora_rank) and the shared rope key <c>k_r</c> (qk_rope_head_dim). Scores are
/// <c>q_nope . (W_uk c) + q_r . k_r = (W_uk^T q_nope) . c + q_r . k_r</c>, so each head's query becomes
/// <c>[W_uk^T q_nope, q_r]</c> against the one shared key <c>[c, k_r]</c> with the latent <c>c</c> as the value: a
/// multi-query attention (kv_num_heads 1, key width rank + rope, value width rank) that runs as one <c>Attention</c>
/// node. Its output is the attention-weighted latent per head; <c>W_uv</c> maps it to the value width before <c>o_proj</c>.
/// </summary>
internal sealed partial class DecoderGraphBuilder
{
    private string LatentAttention(int layer, int kvIndex, string h, MlaConfig mla)
    {
        var n = $"l{layer}_";
        var rank = mla.KvLoraRank;
        var width = rank + mla.QkRopeHeadDim;
        var (query, key, latent3, scale) = LatentAttentionInputs(layer, h, mla);

        // Keys [c, k_r] (the cached latent and rope key side by side), values the latent alone: past value = the
        // cached latent, so present value is the next cached latent; the rope key is cut from present key.
        var past = _g.Node("Concat", n + "mla_past_key", [$"past_key_values.{kvIndex}.key", $"past_key_values.{kvIndex}.value"], Attr("axis", -1L));
        var outputs = FusedAttention(
            n + "attention", query, key, latent3, past, $"past_key_values.{kvIndex}.key", n + "mla_present_key", $"present.{kvIndex}.key", _config.Layers[layer].HeadCount, 1, scale);
        _g.NodeMulti("Slice", n + "present_rope", [outputs[1], _g.Int64s(rank), _g.Int64s(width), _g.Int64s(3)], [$"present.{kvIndex}.value"], [], string.Empty);
        return LatentAttentionOutput(layer, h, outputs[0], mla);
    }

    /// <summary>
    /// Layer <paramref name="layer"/>'s absorbed MLA inputs over <c>_idsShape</c> = [B, S]: the query [B, S, heads x
    /// (rank + rope)], the shared key [c, k_r] [B, S, rank + rope], the latent [B, S, rank] (the value), and the score scale.
    /// </summary>
    private (string Query, string Key, string Latent, double Scale) LatentAttentionInputs(int layer, string h, MlaConfig mla)
    {
        var c = _config;
        var p = $"model.layers.{layer}.self_attn.";
        var n = $"l{layer}_";
        var heads = c.Layers[layer].HeadCount;
        var rank = mla.KvLoraRank;
        var rope = mla.QkRopeHeadDim;
        var nope = mla.QkNopeHeadDim;
        var width = rank + rope;

        var x = RmsNorm(n + "input_norm", h, $"model.layers.{layer}.input_layernorm.weight", c.HiddenSize);

        // Queries [B, S, H, nope + rope]; with rope_interleave the rope rows are de-interleaved in the weights, which
        // is what transformers does to q and k at run time (pairs (2i, 2i+1) -> halves).
        string q;
        if (mla.QLoraRank is { } qRank)
        {
            var qa = _g.Node("Gemm", n + "q_a_proj", [x, Linear(p + "q_a_proj.weight", qRank, c.HiddenSize)], Attr("transB", 1L));
            var qaNormed = RmsNorm(n + "q_a_norm", qa, p + "q_a_layernorm.weight", qRank);
            q = _g.Node("Gemm", n + "q_b_proj", [qaNormed, RopeRowsLinear(p + "q_b_proj.weight", heads, mla.QkHeadDim, nope, qRank, mla)], Attr("transB", 1L));
        }
        else
        {
            q = _g.Node("Gemm", n + "q_proj", [x, RopeRowsLinear(p + "q_proj.weight", heads, mla.QkHeadDim, nope, c.HiddenSize, mla)], Attr("transB", 1L));
        }

        var q4 = _g.Node("Reshape", n + "q_4d", [q, _g.Node("Concat", n + "q_shape_4d", [_idsShape, _g.Int64s(heads, mla.QkHeadDim)], Attr("axis", 0L))]);
        var qParts = _g.NodeMulti("Split", n + "q_split", [q4, _g.Int64s(nope, rope)], [n + "q_nope", n + "q_rope_in"], [Attr("axis", -1L)], string.Empty);
        var qRope = Rope(n + "q", qParts[1], rope);

        // The compressed KV [N, rank + rope] -> normalized latent and roped shared key.
        var kva = _g.Node("Gemm", n + "kv_a_proj", [x, RopeRowsLinear(p + "kv_a_proj_with_mqa.weight", 1, width, rank, c.HiddenSize, mla)], Attr("transB", 1L));
        var kvParts = _g.NodeMulti("Split", n + "kv_split", [kva, _g.Int64s(rank, rope)], [n + "latent_raw", n + "k_rope_raw"], [Attr("axis", -1L)], string.Empty);
        var latent = RmsNorm(n + "kv_a_norm", kvParts[0], p + "kv_a_layernorm.weight", rank);
        var kRope4 = _g.Node("Reshape", n + "k_rope_4d", [kvParts[1], _g.Node("Concat", n + "k_rope_shape", [_idsShape, _g.Int64s(1, rope)], Attr("axis", 0L))]);
        var kRope = _g.Node("Reshape", n + "k_rope_3d", [Rope(n + "k", kRope4, rope), Shape3(rope)]);
        var latent3 = _g.Node("Reshape", n + "latent_3d", [latent, Shape3(rank)]);
        var key = _g.Node("Concat", n + "mla_key", [latent3, kRope], Attr("axis", -1L));

        // Absorb W_uk into the query: q_abs[b, s, h, r] = sum_n q_nope[b, s, h, n] W_uk[h, n, r].
        var uk = KvBPart(p + "kv_b_proj.weight", heads, mla, value: false);
        var qAbsorbed = _g.Node("Einsum", n + "q_absorbed", [qParts[0], uk], Attr("equation", "bshn,hnr->bshr"));
        var query4 = _g.Node("Concat", n + "mla_query_4d", [qAbsorbed, qRope], Attr("axis", -1L));
        var query = _g.Node("Reshape", n + "mla_query", [query4, Shape3(heads * width)]);
        var scale = 1.0 / Math.Sqrt(mla.QkHeadDim);
        if (c.Rope.Type == "yarn" && c.Rope.MscaleAllDim is { } mscaleAllDim && c.Rope.Factor > 1)
        {
            var mscale = (0.1 * mscaleAllDim * Math.Log(c.Rope.Factor)) + 1.0;
            scale *= mscale * mscale;
        }

        return (query, key, latent3, scale);
    }

    /// <summary>
    /// <c>h + o_proj(W_uv attention)</c>: the attention output is the attention-weighted latent per head (any shape whose
    /// rows follow <c>_idsShape</c>), which W_uv maps to the value width before <c>o_proj</c>.
    /// </summary>
    private string LatentAttentionOutput(int layer, string h, string attention, MlaConfig mla)
    {
        var c = _config;
        var p = $"model.layers.{layer}.self_attn.";
        var n = $"l{layer}_";
        var heads = c.Layers[layer].HeadCount;
        var rank = mla.KvLoraRank;
        var uv = KvBPart(p + "kv_b_proj.weight", heads, mla, value: true);
        var weightedLatent = _g.Node("Reshape", n + "attention_latent", [attention, _g.Node("Concat", n + "attention_heads_shape", [_idsShape, _g.Int64s(heads, rank)], Attr("axis", 0L))]);
        var values = _g.Node("Einsum", n + "attention_values", [weightedLatent, uv], Attr("equation", "bshr,hvr->bshv"));
        var values2d = _g.Node("Reshape", n + "attention_2d", [values, _g.Int64s(-1, heads * mla.VHeadDim)]);
        var o = _g.Node("Gemm", n + "o_proj", [values2d, Linear(p + "o_proj.weight", c.HiddenSize, heads * mla.VHeadDim)], Attr("transB", 1L));
        return Residual(n + "attention_residual", h, o);
    }

    /// <summary>
    /// A [groups x groupWidth, inFeatures] linear weight whose rows <c>[ropeStart, groupWidth)</c> of each group are RoPE
    /// dims; with <c>rope_interleave</c> they are reordered from pairs to halves (new j = old 2j, new half + j = old 2j + 1).
    /// </summary>
    private string RopeRowsLinear(string name, int groups, int groupWidth, int ropeStart, int inFeatures, MlaConfig mla)
    {
        var weight = _weights.ReadFloat32(name, groups * groupWidth, inFeatures);
        if (mla.RopeInterleave)
        {
            var rope = groupWidth - ropeStart;
            var half = rope / 2;
            var original = new float[rope * inFeatures];
            for (var g = 0; g < groups; g++)
            {
                var baseRow = (g * groupWidth) + ropeStart;
                weight.AsSpan(baseRow * inFeatures, rope * inFeatures).CopyTo(original);
                for (var j = 0; j < rope; j++)
                {
                    var from = j < half ? 2 * j : (2 * (j - half)) + 1;
                    original.AsSpan(from * inFeatures, inFeatures).CopyTo(weight.AsSpan((baseRow + j) * inFeatures, inFeatures));
                }
            }
        }

        return _g.Weight(name, weight, groups * groupWidth, inFeatures);
    }

    /// <summary>One part of <c>kv_b_proj</c> [H x (nope + v), rank]: W_uk [H, nope, rank], or with <paramref name="value"/> W_uv [H, v, rank].</summary>
    private string KvBPart(string name, int heads, MlaConfig mla, bool value)
    {
        var rank = mla.KvLoraRank;
        var perHead = mla.QkNopeHeadDim + mla.VHeadDim;
        var (skip, rows) = value ? (mla.QkNopeHeadDim, mla.VHeadDim) : (0, mla.QkNopeHeadDim);
        var weight = _weights.ReadFloat32(name, heads * perHead, rank);
        var part = new float[heads * rows * rank];
        for (var h = 0; h < heads; h++)
        {
            weight.AsSpan(((h * perHead) + skip) * rank, rows * rank).CopyTo(part.AsSpan(h * rows * rank));
        }

        return _g.Weight(name + (value ? ".uv" : ".uk"), part, heads, rows, rank);
    }
}
