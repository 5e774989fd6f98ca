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
    /// In the paged MLA graph the key is the roped shared key k_r alone [T, 1, rope] and the query comes scaled (scale 1).
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

        // The paged MLA graph (its prologue made the positions) rotates with one RotaryEmbedding kernel (MlaRotary) and
        // takes the softmax scale in the query's weights (q . k scaled alike, one Mul a layer fewer; RoPE and the W_uk
        // absorption are linear, so the scaled query is the same); the others rotate with the ONNX form and scale later.
        var fusedRope = _mlaPositionIds.Length > 0;
        var scale = mla.SoftmaxScale(c.Rope);
        var queryScale = fusedRope ? (float)scale : 1f;

        // Queries [B, S, H, nope + rope]; with rope_interleave the rope rows are de-interleaved in the weights, which
        // is what transformers does to q and k at run time (pairs (2i, 2i+1) -> halves).
        string q;
        if (mla.QLoraRank is { } qRank)
        {
            var qa = LatentLinear(n + "q_a_proj", x, p + "q_a_proj", qRank, c.HiddenSize);
            var qaNormed = mla.LatentNorms ? RmsNorm(n + "q_a_norm", qa, p + "q_a_layernorm.weight", qRank) : qa;
            q = RopeRowsProjection(n + "q_b_proj", qaNormed, p + "q_b_proj", heads, mla.QkHeadDim, nope, qRank, mla, queryScale);
        }
        else
        {
            q = RopeRowsProjection(n + "q_proj", x, p + "q_proj", heads, mla.QkHeadDim, nope, c.HiddenSize, mla, queryScale);
        }

        var q4 = _g.Node("Reshape", n + "q_4d", [q, RowsShape(n + "q_shape_4d", heads, mla.QkHeadDim)]);
        var qParts = _g.NodeMulti("Split", n + "q_split", [q4, _g.Int64s(nope, rope)], [n + "q_nope", n + "q_rope_in"], [Attr("axis", -1L)], string.Empty);
        // The LATENT PagedAttention rotates the rope parts of q and k itself (rotary_offset = kv_lora_rank).
        var qRope = fusedRope
            ? _g.Node("Reshape", n + "q_rope_4d", [MlaRotary(n + "q", qParts[1], heads, rope), _g.Int64s(1, -1, heads, rope)])
            : MlaLatentAttention ? qParts[1] : Rope(n + "q", qParts[1], rope);

        // The compressed KV [N, rank + rope] -> normalized latent and roped shared key.
        var kva = RopeRowsProjection(n + "kv_a_proj", x, p + "kv_a_proj_with_mqa", 1, width, rank, c.HiddenSize, mla);
        var kvParts = _g.NodeMulti("Split", n + "kv_split", [kva, _g.Int64s(rank, rope)], [n + "latent_raw", n + "k_rope_raw"], [Attr("axis", -1L)], string.Empty);
        var latent = mla.LatentNorms ? RmsNorm(n + "kv_a_norm", kvParts[0], p + "kv_a_layernorm.weight", rank) : kvParts[0];
        string kRope;
        if (fusedRope)
        {
            kRope = MlaRotary(n + "k", kvParts[1], 1, rope);
        }
        else if (MlaLatentAttention)
        {
            kRope = _g.Node("Reshape", n + "k_rope_3d", [kvParts[1], Shape3(rope)]);
        }
        else
        {
            var kRope4 = _g.Node("Reshape", n + "k_rope_4d", [kvParts[1], _g.Node("Concat", n + "k_rope_shape", [_idsShape, _g.Int64s(1, rope)], Attr("axis", 0L))]);
            kRope = _g.Node("Reshape", n + "k_rope_3d", [Rope(n + "k", kRope4, rope), Shape3(rope)]);
        }

        var latent3 = _g.Node("Reshape", n + "latent_3d", [latent, Shape3(rank)]);
        // The paged graph caches the latent and the rope key in separate pools: it takes the rope key alone (no Concat
        // to slice apart again).
        var key = fusedRope ? kRope : _g.Node("Concat", n + "mla_key", [latent3, kRope], Attr("axis", -1L));

        // Absorb W_uk into the query: q_abs[b, s, h, r] = sum_n q_nope[b, s, h, n] W_uk[h, n, r]. A kv_b_proj bias's key
        // part adds q_nope . b_k to every score of a query alike, which softmax ignores: it is dropped.
        var uk = KvBPart(p + "kv_b_proj.weight", heads, mla, value: false);
        var qAbsorbed = _paged
            ? PerHeadMatMul(n + "q_absorbed", qParts[0], uk, heads, nope, rank)
            : _g.Node("Einsum", n + "q_absorbed", [qParts[0], uk], Attr("equation", "bshn,hnr->bshr"));
        var query4 = _g.Node("Concat", n + "mla_query_4d", [qAbsorbed, qRope], Attr("axis", -1L));
        var query = _g.Node("Reshape", n + "mla_query", [query4, Shape3(heads * width)]);
        return (query, key, latent3, fusedRope ? 1.0 : scale);
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
        var weightedLatent = _g.Node("Reshape", n + "attention_latent", [attention, RowsShape(n + "attention_heads_shape", heads, rank)]);
        var values = _paged
            ? PerHeadMatMul(n + "attention_values", weightedLatent, KvBPart(p + "kv_b_proj.weight", heads, mla, value: true, transposed: true), heads, rank, mla.VHeadDim)
            : _g.Node("Einsum", n + "attention_values", [weightedLatent, KvBPart(p + "kv_b_proj.weight", heads, mla, value: true)], Attr("equation", "bshr,hvr->bshv"));
        if (_weights.Contains(p + "kv_b_proj.bias"))
        {
            // The attention weights of a row sum to 1, so the value part of a kv_b_proj bias passes through unchanged.
            values = _g.Node("Add", n + "attention_values_bias", [values, KvBValueBias(p + "kv_b_proj.bias", heads, mla)]);
        }

        var values2d = _g.Node("Reshape", n + "attention_2d", [values, _g.Int64s(-1, heads * mla.VHeadDim)]);
        var o = LatentLinear(n + "o_proj", values2d, p + "o_proj", c.HiddenSize, heads * mla.VHeadDim);
        return Residual(n + "attention_residual", h, o);
    }

    /// <summary>
    /// <c>x @ W^T (+ b)</c> for MLA linear layer <paramref name="prefix"/> ([groups x groupWidth, inFeatures]) whose rows
    /// <c>[ropeStart, groupWidth)</c> of each group are RoPE dims; with <c>rope_interleave</c> the weight's rows and the
    /// bias's entries are reordered from pairs to halves. The bias is used when the checkpoint has one.
    /// </summary>
    private string RopeRowsProjection(string name, string x, string prefix, int groups, int groupWidth, int ropeStart, int inFeatures, MlaConfig mla, float scale = 1f)
    {
        var weight = _weights.ReadFloat32(prefix + ".weight", groups * groupWidth, inFeatures);
        Scale(weight, scale);
        DeinterleaveRopeRows(weight, groups, groupWidth, ropeStart, inFeatures, mla);
        var w = _g.Weight(prefix + ".weight", weight, groups * groupWidth, inFeatures);
        if (!_weights.Contains(prefix + ".bias"))
        {
            return _g.Node("Gemm", name, [x, w], Attr("transB", 1L));
        }

        var bias = _weights.ReadFloat32(prefix + ".bias", groups * groupWidth);
        Scale(bias, scale);
        DeinterleaveRopeRows(bias, groups, groupWidth, ropeStart, 1, mla);
        return _g.Node("Gemm", name, [x, w, _g.Weight(prefix + ".bias", bias, groups * groupWidth)], Attr("transB", 1L));
    }

    /// <summary><c>x @ W^T (+ b)</c> for MLA linear layer <paramref name="prefix"/>, in T (MLA stays unquantized); the bias when the checkpoint has one.</summary>
    private string LatentLinear(string name, string x, string prefix, int outFeatures, int inFeatures)
    {
        var w = Linear(prefix + ".weight", outFeatures, inFeatures);
        return _weights.Contains(prefix + ".bias")
            ? _g.Node("Gemm", name, [x, w, _g.Weight(prefix + ".bias", _weights.ReadFloat32(prefix + ".bias", outFeatures), outFeatures)], Attr("transB", 1L))
            : _g.Node("Gemm", name, [x, w], Attr("transB", 1L));
    }

    /// <summary>Multiplies <paramref name="values"/> by <paramref name="scale"/> in place (fp32, before the cast to T).</summary>
    private static void Scale(float[] values, float scale)
    {
        if (scale == 1f)
        {
            return;
        }

        for (var i = 0; i < values.Length; i++)
        {
            values[i] *= scale;
        }
    }

    /// <summary>
    /// With <c>rope_interleave</c>, reorders rows <c>[ropeStart, groupWidth)</c> of each group of a [groups x groupWidth,
    /// inFeatures] matrix from pairs to halves (new j = old 2j, new half + j = old 2j + 1), in place.
    /// </summary>
    private static void DeinterleaveRopeRows(float[] weight, int groups, int groupWidth, int ropeStart, int inFeatures, MlaConfig mla)
    {
        if (!mla.RopeInterleave)
        {
            return;
        }

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

    /// <summary>The value part of a <c>kv_b_proj</c> bias [H x (nope + v)]: [H, v], added to the per-head values.</summary>
    private string KvBValueBias(string name, int heads, MlaConfig mla)
    {
        var perHead = mla.QkNopeHeadDim + mla.VHeadDim;
        var bias = _weights.ReadFloat32(name, heads * perHead);
        var part = new float[heads * mla.VHeadDim];
        for (var h = 0; h < heads; h++)
        {
            bias.AsSpan((h * perHead) + mla.QkNopeHeadDim, mla.VHeadDim).CopyTo(part.AsSpan(h * mla.VHeadDim));
        }

        return _g.Weight(name + ".v", part, heads, mla.VHeadDim);
    }

    /// <summary>
    /// One part of <c>kv_b_proj</c> [H x (nope + v), rank]: W_uk [H, nope, rank], or with <paramref name="value"/> W_uv
    /// [H, v, rank] ([H, rank, v] when <paramref name="transposed"/>, the right operand of a per-head MatMul).
    /// </summary>
    private string KvBPart(string name, int heads, MlaConfig mla, bool value, bool transposed = false)
    {
        var rank = mla.KvLoraRank;
        var perHead = mla.QkNopeHeadDim + mla.VHeadDim;
        var (skip, rows) = value ? (mla.QkNopeHeadDim, mla.VHeadDim) : (0, mla.QkNopeHeadDim);
        var weight = _weights.ReadFloat32(name, heads * perHead, rank);
        var part = new float[heads * rows * rank];
        for (var h = 0; h < heads; h++)
        {
            var source = weight.AsSpan(((h * perHead) + skip) * rank, rows * rank);
            if (!transposed)
            {
                source.CopyTo(part.AsSpan(h * rows * rank));
                continue;
            }

            for (var row = 0; row < rows; row++)
            {
                for (var r = 0; r < rank; r++)
                {
                    part[(h * rows * rank) + (r * rows) + row] = source[(row * rank) + r];
                }
            }
        }

        var suffix = (value ? ".uv" : ".uk") + (transposed ? "_t" : string.Empty);
        return transposed ? _g.Weight(name + suffix, part, heads, rank, rows) : _g.Weight(name + suffix, part, heads, rows, rank);
    }

    /// <summary>
    /// <c>x[.., h, :] @ w[h]</c> for each head: x is [rows..., heads, inner] (rows following <c>_idsShape</c>), w
    /// [heads, inner, outer]; as Transpose + batched MatMul + Transpose (the paged graph's form: ONNX Runtime's CUDA
    /// Einsum has no bf16 kernel), giving [rows..., heads, outer].
    /// </summary>
    private string PerHeadMatMul(string name, string x, string w, int heads, int inner, int outer)
    {
        var byHead = _g.Node("Transpose", name + "_by_head", [_g.Node("Reshape", name + "_rows", [x, _g.Int64s(-1, heads, inner)])], Attr("perm", [1L, 0L, 2L]));
        var product = _g.Node("MatMul", name + "_matmul", [byHead, w]);
        var byRow = _g.Node("Transpose", name + "_by_row", [product], Attr("perm", [1L, 0L, 2L]));
        return _g.Node("Reshape", name, [byRow, RowsShape(name + "_shape", heads, outer)]);
    }

    /// <summary>
    /// The shape <c>_idsShape</c> + [<paramref name="a"/>, <paramref name="b"/>]: a Concat named <paramref name="name"/>, or in
    /// the paged MLA graph, whose ids are [1, T], the constant [1, -1, a, b] (no node: a step run eagerly dispatches every
    /// node, and these were several a layer).
    /// </summary>
    private string RowsShape(string name, int a, int b) =>
        _mlaPositionIds.Length > 0
            ? _g.Int64s(1, -1, a, b)
            : _g.Node("Concat", name, [_idsShape, _g.Int64s(a, b)], Attr("axis", 0L));
}
