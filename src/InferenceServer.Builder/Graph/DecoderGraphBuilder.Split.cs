// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Checkpoint;
using InferenceServer.Builder.Onnx.Proto;
using static InferenceServer.Builder.Graph.OnnxGraphWriter;

namespace InferenceServer.Builder.Graph;

/// <summary>
/// The split form of ADR 0005: the decoder cut at every attention operator into L + 1 segment graphs over packed
/// token rows [T, ...], for attention run elsewhere (an attention backend on a memory device). The segments are fp32, or
/// with an fp16/bf16 writer (<c>--dtype fp16|bf16 --split</c>) carry hidden, q, k, v, attention and the RoPE rows in that
/// type, norms as <c>SimplifiedLayerNormalization</c> (fp32 statistics), RoPE as <c>com.microsoft.RotaryEmbedding</c> (PagedAttention's
/// own rotary expression) and logits cast to fp32, as the paged graph does; the MoH head mask stays fp32, computed from the queries cast to fp32. Segment 0 embeds and
/// projects layer 0's q, k, v; segment s applies layer s-1's attention output (o_proj, residual), the MLPs up to the
/// next attention layer and that layer's projections; the last ends in the LM head. Norms, projections, RoPE, MoH and
/// the MLP/MoE are the fused graph's own helpers; the last segment also gives each logit row's argmax (<c>next_tokens</c>).
/// </summary>
internal sealed partial class DecoderGraphBuilder
{
    /// <summary>Segment inputs and outputs (ADR 0005's table).</summary>
    public const string SplitHidden = "hidden";

    /// <summary>The residual stream a segment hands to the next, [T, hidden].</summary>
    public const string SplitHiddenOut = "hidden_out";

    /// <summary>The previous attention layer's output, [T, heads x value_width].</summary>
    public const string SplitAttention = "attention";

    /// <summary>The RoPE cos rows of the step's positions, [T, rotary_dim / 2] (segment 0's output, the others' input).</summary>
    public const string SplitRopeCos = "rope_cos";

    /// <summary>The RoPE sin rows of the step's positions.</summary>
    public const string SplitRopeSin = "rope_sin";

    /// <summary>The MoH head mask, [T, heads], 1 for a head the token uses.</summary>
    public const string SplitHeadMask = "head_mask";

    /// <summary>
    /// An MoH layer's queries of the heads each token uses only, [T, active x d] (active = shared + routed active heads),
    /// in the order of <see cref="SplitHeadIndex"/>: what a memory device needs of q, fewer bytes to send than all heads'.
    /// </summary>
    public const string SplitRoutedQueries = "q_routed";

    /// <summary>The heads of <see cref="SplitRoutedQueries"/>, [T, active] int64: the shared heads 0..S-1, then the router's top-k routed heads.</summary>
    public const string SplitHeadIndex = "head_index";

    // SplitRotary's position_ids, the one-element offset 0, made once per segment.
    private string? _splitPositions;

    /// <summary>
    /// Emits the segments: <paramref name="newSegment"/> gives each its writer (all sharing one data file),
    /// <paramref name="save"/> writes segment s. Returns the attention calls between them, in order.
    /// </summary>
    public IReadOnlyList<SplitAttentionLayer> BuildSplit(Func<OnnxGraphWriter> newSegment, Action<int, OnnxGraphWriter> save, CancellationToken cancellationToken)
    {
        var c = _config;
        var t = _g.ElementType;

        // As in the paged graph: RMSNorm with fp32 statistics, since x^2 overflows fp16.
        _paged = t != TensorProto.Types.DataType.Float;
        var attentionLayers = AttentionLayers();
        var calls = new List<SplitAttentionLayer>(attentionLayers.Count);
        for (var s = 0; s <= attentionLayers.Count; s++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            _g = newSegment();
            _residual = null;
            _splitPositions = null;
            _shape3.Clear();
            var last = s == attentionLayers.Count;
            string h;
            int layer;
            if (s == 0)
            {
                _g.Input("input_ids", TensorProto.Types.DataType.Int64, "num_tokens");
                _g.Input("position_ids", TensorProto.Types.DataType.Int64, "num_tokens");
                _idsShape = RowsShape(_g.Node("Shape", "ids_shape_1d", ["input_ids"]));
                var (cosCache, sinCache) = RopeCaches();
                _g.NodeMulti("Gather", "rope_cos_rows", [cosCache, "position_ids"], [SplitRopeCos], [], string.Empty);
                _g.NodeMulti("Gather", "rope_sin_rows", [sinCache, "position_ids"], [SplitRopeSin], [], string.Empty);
                _g.Output(SplitRopeCos, t, "num_tokens", RotaryDim / 2);
                _g.Output(SplitRopeSin, t, "num_tokens", RotaryDim / 2);
                h = _g.Node("Gather", "embed", [Linear("model.embed_tokens.weight", c.VocabSize, c.HiddenSize), "input_ids"]);
                layer = 0;
            }
            else
            {
                var previous = attentionLayers[s - 1];
                _g.Input(SplitHidden, t, "num_tokens", c.HiddenSize);
                _g.Input(SplitAttention, t, "num_tokens", c.Layers[previous].HeadCount * (c.Mla is { } latent ? latent.KvLoraRank : c.HeadDim));
                if (!last)
                {
                    _g.Input(SplitRopeCos, t, "num_tokens", RotaryDim / 2);
                    _g.Input(SplitRopeSin, t, "num_tokens", RotaryDim / 2);
                }

                _idsShape = RowsShape(_g.Node("Slice", "ids_shape_1d", [_g.Node("Shape", "hidden_shape", [SplitHidden]), _g.Int64s(0), _g.Int64s(1)]));
                h = c.Mla is { } mla ? LatentAttentionOutput(previous, SplitHidden, SplitAttention, mla) : AttentionResidual(previous, SplitHidden, SplitAttention);
                if (c.Layers[previous].HasMlp)
                {
                    h = FeedForward(previous, h);
                }

                layer = previous + 1;
            }

            // The layers before the next attention layer have none of their own (pruned): only their MLPs run here.
            var end = last ? c.LayerCount : attentionLayers[s];
            for (; layer < end; layer++)
            {
                if (c.Layers[layer].HasMlp)
                {
                    h = FeedForward(layer, h);
                }
            }

            if (last)
            {
                _g.Input("logits_indices", TensorProto.Types.DataType.Int64, "num_logits");
                var normed = RmsNorm("final_norm", h, "model.norm.weight", c.HiddenSize);
                var rows = _g.Node("Gather", "logits_rows", [normed, "logits_indices"], Attr("axis", 0L));
                var embedding = c.TieWordEmbeddings ? Linear("model.embed_tokens.weight", c.VocabSize, c.HiddenSize) : string.Empty;
                if (t == TensorProto.Types.DataType.Float)
                {
                    _g.NodeMulti("Gemm", "lm_head", [rows, LmHead(embedding)], ["logits"], [Attr("transB", 1L)], string.Empty);
                }
                else
                {
                    var logitsT = _g.Node("Gemm", "lm_head", [rows, LmHead(embedding)], Attr("transB", 1L));
                    _g.NodeMulti("Cast", "logits_float", [logitsT], ["logits"], [Attr("to", (long)TensorProto.Types.DataType.Float)], string.Empty);
                }

                NextTokens();
                _g.Output("logits", TensorProto.Types.DataType.Float, "num_logits", c.VocabSize);
                _g.Output(NextTokensOutput, TensorProto.Types.DataType.Int64, "num_logits");
            }
            else
            {
                _cos = _g.Node("Unsqueeze", "rope_cos_3d", [SplitRopeCos, _g.Int64s(1)]);
                _sin = _g.Node("Unsqueeze", "rope_sin_3d", [SplitRopeSin, _g.Int64s(1)]);
                calls.Add(SplitAttentionInputs(attentionLayers[s], h));
                _g.NodeMulti("Identity", "hidden_out", [h], [SplitHiddenOut], [], string.Empty);
                _g.Output(SplitHiddenOut, t, "num_tokens", c.HiddenSize);
            }

            save(s, _g);
        }

        return calls;
    }

    /// <summary>
    /// The row shape the layer helpers see: [T] for GQA (heads become [T, heads, d]), [1, T] for MLA, whose helpers are
    /// written for the fused graph's [B, S, ...] (RoPE rows [T, 1, half] broadcast over either).
    /// </summary>
    private string RowsShape(string tokens) =>
        _config.Mla is null ? tokens : _g.Node("Concat", "ids_shape", [_g.Int64s(1), tokens], Attr("axis", 0L));

    /// <summary>
    /// Layer <paramref name="layer"/>'s attention inputs as segment outputs: its input norm, q/k/v projections, per-head
    /// norms and RoPE, as <c>q</c>, <c>k</c>, <c>v</c> [T, heads x d], and for MoH the head mask.
    /// </summary>
    private SplitAttentionLayer SplitAttentionInputs(int layer, string h)
    {
        var c = _config;
        var t = _g.ElementType;
        var (p, n, heads, kvHeads, d) = LayerShape(layer);
        if (c.Mla is { } mla)
        {
            // The absorbed query against one shared key [latent, rope key] whose first kv_lora_rank entries are the value.
            var width = mla.KvLoraRank + mla.QkRopeHeadDim;
            var (query, key, latent, scale) = LatentAttentionInputs(layer, h, mla);
            _g.NodeMulti("Reshape", n + "q_2d", [query, _g.Int64s(-1, heads * width)], ["q"], [], string.Empty);
            _g.NodeMulti("Reshape", n + "k_2d", [key, _g.Int64s(-1, width)], ["k"], [], string.Empty);
            _g.NodeMulti("Reshape", n + "v_2d", [latent, _g.Int64s(-1, mla.KvLoraRank)], ["v"], [], string.Empty);
            _g.Output("q", t, "num_tokens", heads * width);
            _g.Output("k", t, "num_tokens", width);
            _g.Output("v", t, "num_tokens", mla.KvLoraRank);
            return new SplitAttentionLayer(layer, heads, 1, width, mla.KvLoraRank, scale, SplitAttentionLayer.Mla);
        }

        var x = RmsNorm(n + "input_norm", h, p + "input_layernorm.weight", c.HiddenSize);
        var (q, k, v) = QkvProjections(n, p, x, heads, kvHeads);
        var q3 = Heads(n + "q", q, heads, p + "self_attn.q_norm.weight");
        var kind = SplitAttentionLayer.Gqa;
        (MohConfig Config, string TopIndices)? routing = null;
        if (c.Moh is { } moh)
        {
            // The router works in fp32 (its constants are fp32), on the pre-rotary queries.
            var router = t == TensorProto.Types.DataType.Float ? q3 : _g.Node("Cast", n + "moh_q_float", [q3], Attr("to", (long)TensorProto.Types.DataType.Float));
            var q4 = _g.Node("Reshape", n + "moh_q_4d", [router, _g.Int64s(1, -1, heads, d)]);
            var (mask, top) = MohRouting(n, q4, heads, moh);
            _g.NodeMulti("Reshape", n + "moh_mask_2d", [mask, _g.Int64s(-1, heads)], [SplitHeadMask], [], string.Empty);
            _g.Output(SplitHeadMask, TensorProto.Types.DataType.Float, "num_tokens", heads);
            kind = SplitAttentionLayer.Moh;
            routing = (moh, top);
        }

        var k3 = Heads(n + "k", k, kvHeads, p + "self_attn.k_norm.weight");
        var half = t != TensorProto.Types.DataType.Float;
        var qRotated = half ? SplitRotary(n + "q", q3, heads) : Rope(n + "q", q3);
        _g.NodeMulti("Reshape", n + "q_2d", [qRotated, _g.Int64s(-1, heads * d)], ["q"], [], string.Empty);
        _g.NodeMulti("Reshape", n + "k_2d", [half ? SplitRotary(n + "k", k3, kvHeads) : Rope(n + "k", k3), _g.Int64s(-1, kvHeads * d)], ["k"], [], string.Empty);
        if (routing is { } chosen)
        {
            RoutedQueries(n, qRotated, chosen.TopIndices, heads, chosen.Config);
        }

        _g.NodeMulti("Identity", n + "v_out", [v], ["v"], [], string.Empty);
        _g.Output("q", t, "num_tokens", heads * d);
        _g.Output("k", t, "num_tokens", kvHeads * d);
        _g.Output("v", t, "num_tokens", kvHeads * d);
        return new SplitAttentionLayer(layer, heads, kvHeads, d, d, 1.0 / Math.Sqrt(d), kind);
    }

    /// <summary>
    /// An MoH layer's <see cref="SplitHeadIndex"/> (the shared heads, then <paramref name="topIndices"/> [1, T, k] offset
    /// past them) and <see cref="SplitRoutedQueries"/>, those heads' rows of the rotated queries <paramref name="q"/>
    /// [T, heads, d]. Where the router's probabilities tie at the k-th place the mask counts every tied head and this
    /// list the first k (TopK's order); a tie of fp32 probabilities is left at that.
    /// </summary>
    private void RoutedQueries(string n, string q, string topIndices, int heads, MohConfig moh)
    {
        var d = _config.HeadDim;
        var active = Math.Min(heads, moh.SharedHeads + moh.RoutedActiveHeads);
        var routed = _g.Node("Reshape", n + "moh_top_2d", [topIndices, _g.Int64s(-1, moh.RoutedActiveHeads)]);
        var routedHeads = _g.Node("Add", n + "moh_routed_heads", [routed, _g.Int64s(moh.SharedHeads)]);
        var index = routedHeads;
        if (moh.SharedHeads > 0)
        {
            var rows = _g.Node("Slice", n + "moh_rows", [_g.Node("Shape", n + "moh_top_shape", [routed]), _g.Int64s(0), _g.Int64s(1)]);
            var sharedShape = _g.Node("Concat", n + "moh_shared_shape", [rows, _g.Int64s(moh.SharedHeads)], Attr("axis", 0L));
            var shared = _g.Node("Expand", n + "moh_shared_heads", [_g.Int64s([.. Enumerable.Range(0, moh.SharedHeads).Select(static h => (long)h)]), sharedShape]);
            index = _g.Node("Concat", n + "moh_head_index", [shared, routedHeads], Attr("axis", 1L));
        }

        _g.NodeMulti("Identity", n + "head_index_out", [index], [SplitHeadIndex], [], string.Empty);
        var gatherShape = _g.Node("Concat", n + "moh_gather_shape", [_g.Node("Shape", n + "moh_index_shape", [index]), _g.Int64s(d)], Attr("axis", 0L));
        var gatherIndex = _g.Node("Expand", n + "moh_gather_index", [_g.Node("Unsqueeze", n + "moh_index_3d", [index, _g.Int64s(2)]), gatherShape]);
        var chosen = _g.Node("GatherElements", n + "moh_chosen_q", [q, gatherIndex], Attr("axis", 1L));
        _g.NodeMulti("Reshape", n + "q_routed_2d", [chosen, _g.Int64s(-1, active * d)], [SplitRoutedQueries], [], string.Empty);
        _g.Output(SplitRoutedQueries, _g.ElementType, "num_tokens", active * d);
        _g.Output(SplitHeadIndex, TensorProto.Types.DataType.Int64, "num_tokens", active);
    }

    /// <summary>
    /// RoPE of an fp16/bf16 segment's [T, heads, d] projection as <c>com.microsoft.RotaryEmbedding</c>, the kernel
    /// PagedAttention rotates with in the fused graph (the same expression, x cos + sign y sin, in T): the segment's RoPE
    /// rows are the op's cos/sin cache and the token index its position (position_ids = [0], the offset form), so the split hands its backends bit for bit the
    /// q and k the fused graph attends with (separate Mul/Sub/Add round each product, which alone moved the 1B shape's greedy
    /// tokens off the fused path's). [1, T, heads x d] in, [T, heads, d] out.
    /// </summary>
    private string SplitRotary(string prefix, string x, int heads)
    {
        var d = _config.HeadDim;
        // position_ids of one element: the op's offset form, row s at position 0 + s, so row s reads RoPE row s (a
        // constant: nothing is computed or copied per step).
        _splitPositions ??= _g.Int64s(0);
        List<AttributeProto> attributes = [Attr("interleaved", 0L), Attr("num_heads", (long)heads)];
        if (RotaryDim < d)
        {
            attributes.Add(Attr("rotary_embedding_dim", (long)RotaryDim));
        }

        var rows = _g.Node("Reshape", prefix + "_rotary_in", [x, _g.Int64s(1, -1, heads * d)]);
        var roped = _g.NodeMulti("RotaryEmbedding", prefix + "_rotary", [rows, _splitPositions, SplitRopeCos, SplitRopeSin], [prefix + "_rotary_out"], [.. attributes], PagedAttentionDomain)[0];
        return _g.Node("Reshape", prefix + "_rotary_heads", [roped, _g.Int64s(-1, heads, d)]);
    }
}
