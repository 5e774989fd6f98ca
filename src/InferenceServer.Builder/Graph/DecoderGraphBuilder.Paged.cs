// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Onnx.Proto;
using static InferenceServer.Builder.Graph.OnnxGraphWriter;

namespace InferenceServer.Builder.Graph;

/// <summary>
/// The paged CUDA graph of ADR 0003 (<c>inferenceserver.graph = paged-v1</c>): the hidden state is a packed 2-D
/// <c>[num_tokens, hidden]</c> tensor in T (fp16 or bf16), each attention layer is one <c>com.microsoft.PagedAttention</c>
/// node over the layer's block pools with rotary fused in, and only the rows named by <c>logits_indices</c> reach the
/// LM head. Projections, the MLP, MoH and pruned layers share the dense builder's code; RMSNorm becomes
/// <c>SimplifiedLayerNormalization</c> (fp32 statistics).
/// </summary>
internal sealed partial class DecoderGraphBuilder
{
    /// <summary>
    /// The paged graph's optional input of per-step bounds, PagedAttention's input 16 (after slot_mapping, head_sink,
    /// q/k norm weights and k/v scales, left empty): int32 [max new tokens in a row, max past + new tokens of a row].
    /// </summary>
    public const string AttentionMetadataInput = "attention_metadata";

    /// <summary>Whether <see cref="BuildPaged"/> declares <see cref="AttentionMetadataInput"/> and feeds it to every PagedAttention.</summary>
    public bool AttentionMetadata { get; init; } = true;

    /// <summary>The paged attention op type (domain <see cref="PagedAttentionDomain"/>).</summary>
    public const string PagedAttentionOpType = "PagedAttention";

    /// <summary>The domain of <see cref="PagedAttentionOpType"/>.</summary>
    public const string PagedAttentionDomain = "com.microsoft";

    /// <summary>The opset version of <see cref="PagedAttentionDomain"/> the paged graph imports.</summary>
    public const long MicrosoftOpset = 1;

    /// <summary>The <c>inferenceserver.graph</c> metadata value of the paged graph.</summary>
    public const string PagedGraph = "paged-v1";

    // Set by BuildPaged: RMSNorm is emitted as SimplifiedLayerNormalization; _cos/_sin hold the whole tables.
    private bool _paged;

    /// <summary>Emits the paged graph; checks for cancellation per layer. MLA layers and MoE MLPs follow ADR 0008.</summary>
    public void BuildPaged(CancellationToken cancellationToken)
    {
        var c = _config;
        _paged = true;
        DeclarePagedIo();
        var (cosTable, sinTable) = RopeCaches();
        if (c.Mla is null || MlaLatentAttention)
        {
            // PagedAttention takes the whole tables and rotates inside (the LATENT layout too: ADR 0008).
            (_cos, _sin) = (cosTable, sinTable);
            if (c.Mla is not null)
            {
                _idsShape = _g.Node("Concat", "ids_shape", [_g.Int64s(1), _g.Node("Shape", "mla_tokens", ["input_ids"])], Attr("axis", 0L));
            }
        }
        else
        {
            PagedMlaPrologue(cosTable, sinTable);
        }

        var embedding = Linear("model.embed_tokens.weight", c.VocabSize, c.HiddenSize);
        var h = _g.Node("Gather", "embed", [embedding, "input_ids"]);
        var kvIndex = 0;
        for (var layer = 0; layer < c.LayerCount; layer++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (c.Layers[layer].HasAttention)
            {
                h = c.Mla is { } mla
                    ? MlaLatentAttention ? PagedLatentAttentionOp(layer, kvIndex++, h, mla) : PagedLatentAttention(layer, kvIndex++, h, mla)
                    : Attention(layer, kvIndex++, h);
            }

            if (c.Layers[layer].HasMlp)
            {
                h = FeedForward(layer, h);
            }
        }

        var normed = RmsNorm("final_norm", h, "model.norm.weight", c.HiddenSize);
        var rows = _g.Node("Gather", "logits_rows", [normed, "logits_indices"], Attr("axis", 0L));
        var logitsT = _g.Node("Gemm", "lm_head", [rows, LmHead(embedding)], Attr("transB", 1L));
        _g.NodeMulti("Cast", "logits_float", [logitsT], ["logits"], [Attr("to", (long)TensorProto.Types.DataType.Float)], string.Empty);
        NextTokens();
    }

    /// <summary>The output each logit row's argmax goes to, [num_logits] int64 (paged graph and split form alike).</summary>
    public const string NextTokensOutput = "next_tokens";

    /// <summary>
    /// <see cref="NextTokensOutput"/>: the greedy token of each row of the fp32 <c>logits</c>, on the device, so a runner
    /// that reads it leaves the logits where they are unless a row needs its distribution.
    /// </summary>
    private void NextTokens() =>
        _g.NodeMulti("ArgMax", "next_tokens", ["logits"], [NextTokensOutput], [Attr("axis", 1L), Attr("keepdims", 0L), Attr("select_last_index", 0L)], string.Empty);

    private void DeclarePagedIo()
    {
        var c = _config;
        var t = _g.ElementType;
        var kvLayers = AttentionLayers();

        _g.Input("input_ids", TensorProto.Types.DataType.Int64, "num_tokens");
        _g.Input("cumulative_sequence_length", TensorProto.Types.DataType.Int32, "batch_size_plus_1");
        _g.Input("past_seqlens", TensorProto.Types.DataType.Int32, "batch_size");
        _g.Input("block_table", TensorProto.Types.DataType.Int32, "batch_size", "max_blocks");
        _g.Input("logits_indices", TensorProto.Types.DataType.Int64, "num_logits");
        if (AttentionMetadata)
        {
            _g.Input(AttentionMetadataInput, TensorProto.Types.DataType.Int32, 2);
        }

        for (var i = 0; i < kvLayers.Count; i++)
        {
            if (LatentPools(out var width))
            {
                _g.Input($"key_cache.{i}", t, "num_blocks", "block_size", 1, width);
                continue;
            }

            var (keyHeads, keyWidth, valueHeads, valueWidth) = KvShape(c, kvLayers[i]);
            _g.Input($"key_cache.{i}", t, "num_blocks", "block_size", keyHeads, keyWidth);
            _g.Input($"value_cache.{i}", t, "num_blocks", "block_size", valueHeads, valueWidth);
        }

        _g.Output("logits", TensorProto.Types.DataType.Float, "num_logits", c.VocabSize);
        _g.Output(NextTokensOutput, TensorProto.Types.DataType.Int64, "num_logits");
        for (var i = 0; i < kvLayers.Count; i++)
        {
            if (LatentPools(out var width))
            {
                _g.Output($"key_cache_out.{i}", t, "num_blocks", "block_size", 1, width);
                continue;
            }

            var (keyHeads, keyWidth, valueHeads, valueWidth) = KvShape(c, kvLayers[i]);
            _g.Output($"key_cache_out.{i}", t, "num_blocks", "block_size", keyHeads, keyWidth);
            _g.Output($"value_cache_out.{i}", t, "num_blocks", "block_size", valueHeads, valueWidth);
        }
    }

    /// <summary>Whether the KV pools are LATENT ones (one a layer, <paramref name="width"/> = kv_lora_rank + rope wide).</summary>
    private bool LatentPools(out int width)
    {
        width = _config.Mla is { } mla ? mla.KvLoraRank + mla.QkRopeHeadDim : 0;
        return MlaLatentAttention && _config.Mla is not null;
    }

    /// <summary>
    /// A <c>PagedAttention</c> node's inputs: q, k, v and the pools as given (empty names for absent ones), the step's row
    /// offsets, past lengths and block table, the whole RoPE tables, and with <see cref="AttentionMetadata"/> the host-side
    /// bounds in slot 16.
    /// </summary>
    private string[] PagedAttentionInputs(string q, string k, string v, string keyCache, string valueCache) =>
        AttentionMetadata
            ? [q, k, v, keyCache, valueCache, "cumulative_sequence_length", "past_seqlens", "block_table", _cos, _sin,
                string.Empty, string.Empty, string.Empty, string.Empty, string.Empty, string.Empty, AttentionMetadataInput]
            : [q, k, v, keyCache, valueCache, "cumulative_sequence_length", "past_seqlens", "block_table", _cos, _sin];

    /// <summary>
    /// The paged graph's attention of layer <paramref name="layer"/> over packed projections [T, width]: per-head norms,
    /// the MoH mask, and one <c>PagedAttention</c> (rotary inside) cached as KV index <paramref name="kvIndex"/>; [T, heads x d].
    /// With <paramref name="k"/> and <paramref name="v"/> empty, <paramref name="q"/> is the packed [q | k | v] projection.
    /// </summary>
    private string PagedAttentionCore(int layer, int kvIndex, string q, string k, string v)
    {
        var c = _config;
        var (p, n, heads, kvHeads, d) = LayerShape(layer);
        if (k.Length > 0)
        {
            q = PackedHeadNorm(n + "q", q, heads, p + "self_attn.q_norm.weight");
            k = PackedHeadNorm(n + "k", k, kvHeads, p + "self_attn.k_norm.weight");
        }

        string? headMask = null;
        if (c.Moh is { } moh)
        {
            // The mask is computed in fp32 from the pre-rotary queries, on a [1, T, heads, d] view.
            var qFloat = _g.Node("Cast", n + "moh_q_float", [q], Attr("to", (long)TensorProto.Types.DataType.Float));
            var q4 = _g.Node("Reshape", n + "moh_q_4d", [qFloat, _g.Int64s(1, -1, heads, d)]);
            var mask4 = MohHeadMask(n, q4, heads, moh);
            var mask3 = _g.Node("Reshape", n + "moh_mask_3d", [mask4, _g.Int64s(-1, heads, 1)]);
            headMask = _g.Node("Cast", n + "moh_mask_t", [mask3], Attr("to", (long)_g.ElementType));
        }

        var outputs = _g.NodeMulti(
            PagedAttentionOpType,
            n + "attention",
            PagedAttentionInputs(q, k, v, $"key_cache.{kvIndex}", $"value_cache.{kvIndex}"),
            [n + "attention", $"key_cache_out.{kvIndex}", $"value_cache_out.{kvIndex}"],
            [
                Attr("num_heads", (long)heads), Attr("kv_num_heads", (long)kvHeads), Attr("scale", (float)(1.0 / Math.Sqrt(d))),
                Attr("do_rotary", 1L), Attr("rotary_interleaved", 0L),
            ],
            PagedAttentionDomain);

        if (headMask is null)
        {
            return outputs[0];
        }

        var perHead = _g.Node("Reshape", n + "attention_heads", [outputs[0], _g.Int64s(-1, heads, d)]);
        var masked = _g.Node("Mul", n + "attention_moh", [perHead, headMask]);
        return _g.Node("Reshape", n + "attention_2d", [masked, _g.Int64s(-1, heads * d)]);
    }

    /// <summary>The optional per-head RMSNorm (Qwen3 q_norm / k_norm) of a packed [T, heads x d] projection: [T, heads, d], norm, back.</summary>
    private string PackedHeadNorm(string prefix, string projection, int headCount, string normWeight)
    {
        if (!HasHeadNorm(normWeight))
        {
            return projection;
        }

        var d = _config.HeadDim;
        var x = _g.Node("Reshape", prefix + "_3d", [projection, _g.Int64s(-1, headCount, d)]);
        var normed = RmsNorm(prefix + "_norm", x, normWeight, d);
        return _g.Node("Reshape", prefix + "_normed_2d", [normed, _g.Int64s(-1, headCount * d)]);
    }
}
