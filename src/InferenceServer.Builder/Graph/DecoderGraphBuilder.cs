// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using InferenceServer.Builder.Checkpoint;
using InferenceServer.Builder.Onnx.Proto;
using InferenceServer.Builder.Safetensors;
using static InferenceServer.Builder.Graph.OnnxGraphWriter;

namespace InferenceServer.Builder.Graph;

/// <summary>
/// Emits the dense fp32 graph of a Llama-family decoder (Llama, Mistral, Qwen2 with q/k/v bias, Qwen3 with q/k norm,
/// Phi-3 with fused qkv and gate_up; DeepSeek-V3 MLA in the <c>.Mla</c> part)
/// with the Hugging Face Optimum I/O convention, one ONNX <c>Attention</c> node (opset 23) per layer; the paged
/// fp16/bf16 CUDA graph of ADR 0003 is the <c>.Paged</c> part, sharing the layers' code.
/// The hidden state runs as a 2-D <c>[batch x seq, hidden]</c> tensor so that every projection is one
/// <c>Gemm(transB = 1)</c> over the checkpoint's own <c>[out, in]</c> weight, with no transposed copy.
/// </summary>
internal sealed partial class DecoderGraphBuilder
{
    /// <summary>Additive bias for masked attention scores: far below any real score, still finite in fp32 when added twice.</summary>
    private const float MaskedScore = -1e30f;

    private readonly DecoderConfig _config;
    private readonly SafetensorsCheckpoint _weights;
    // Replaced per segment graph by BuildSplit; one writer for the fused and paged graphs.
    private OnnxGraphWriter _g;

    // Values computed once in the prologue and shared by every layer.
    private string _idsShape = string.Empty;
    private string _attentionBias = string.Empty;
    private string _cos = string.Empty;
    private string _sin = string.Empty;

    // Shape3's Concats by width, for the current writer and _idsShape (cleared with them).
    private readonly Dictionary<int, string> _shape3 = [];

    /// <summary>Creates a builder that reads <paramref name="weights"/> and writes through <paramref name="writer"/>.</summary>
    public DecoderGraphBuilder(DecoderConfig config, SafetensorsCheckpoint weights, OnnxGraphWriter writer)
    {
        _config = config;
        _weights = weights;
        _g = writer;
    }

    /// <summary>The per-layer fused attention node: the ONNX <c>Attention</c> op (opset 23), domain "".</summary>
    public const string AttentionOpType = "Attention";

    /// <summary>The ONNX opset the graph imports (23: the first with <c>Attention</c>).</summary>
    public const long OnnxOpset = 23;

    /// <summary>The IR version that opset 23 requires.</summary>
    public const long IrVersion = 11;

    /// <summary>Width of the rotating part of each head.</summary>
    private int RotaryDim => _config.RotaryDim;

    /// <summary>Emits the whole graph: I/O, prologue, layers, final norm and LM head; checks for cancellation per layer.</summary>
    public void Build(CancellationToken cancellationToken)
    {
        RotaryOp = FuseKernels && !_genAi && _config.Mla is null;
        DeclareIo();
        if (_genAi)
        {
            GenAiPrologue();
        }
        else
        {
            Prologue();
        }

        var c = _config;
        var embedding = Linear("model.embed_tokens.weight", c.VocabSize, c.HiddenSize);
        var embedded = _g.Node("Gather", "embed", [embedding, "input_ids"]);
        var h = _g.Node("Reshape", "embed_2d", [embedded, _g.Int64s(-1, c.HiddenSize)]);
        var kvIndex = 0;
        for (var layer = 0; layer < c.LayerCount; layer++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (c.Layers[layer].HasAttention)
            {
                h = c.Mla is { } mla ? LatentAttention(layer, kvIndex++, h, mla) : Attention(layer, kvIndex++, h);
            }

            if (c.Layers[layer].HasMlp)
            {
                h = FeedForward(layer, h);
            }
        }

        var normed = RmsNorm("final_norm", h, "model.norm.weight", c.HiddenSize);
        var logits2d = _g.Node("Gemm", "lm_head", [normed, LmHead(embedding)], Attr("transB", 1L));
        var logitsShape = _g.Node("Concat", "logits_shape", [_idsShape, _g.Int64s(c.VocabSize)], Attr("axis", 0L));
        _g.NodeMulti("Reshape", "logits_3d", [logits2d, logitsShape], ["logits"], [], string.Empty);
    }

    /// <summary>The LM head weight: <c>lm_head.weight</c>, or the embedding when the checkpoint ties them.</summary>
    private string LmHead(string embedding)
    {
        var c = _config;
        if (c.TieWordEmbeddings || !_weights.Contains("lm_head.weight"))
        {
            return c.TieWordEmbeddings
                ? embedding
                : throw new ModelBuildException("checkpoint has no lm_head.weight and tie_word_embeddings is false");
        }

        return Linear("lm_head.weight", c.VocabSize, c.HiddenSize);
    }

    /// <summary>
    /// The decoder layer behind each KV-cache index: <c>past_key_values.{i}</c> / <c>present.{i}</c> count only the layers
    /// that have attention, so a pruned model whose layer 1 has none exposes layers 0 and 2 as KV indices 0 and 1.
    /// </summary>
    public static IReadOnlyList<int> KvLayers(DecoderConfig config)
    {
        var layers = new List<int>(config.LayerCount);
        for (var i = 0; i < config.LayerCount; i++)
        {
            if (config.Layers[i].HasAttention)
            {
                layers.Add(i);
            }
        }

        return layers;
    }

    /// <summary><see cref="KvLayers"/> of this config; at least one.</summary>
    private IReadOnlyList<int> AttentionLayers()
    {
        var kvLayers = KvLayers(_config);
        return kvLayers.Count > 0
            ? kvLayers
            : throw new ModelBuildException("every layer's attention is a no_op; a decoder needs at least one attention layer");
    }

    /// <summary>
    /// The cached key and value of decoder layer <paramref name="layer"/>: [kv_heads, head_dim] twice, or for MLA the
    /// latent [1, kv_lora_rank] as "key" and the shared rope key [1, qk_rope_head_dim] as "value".
    /// </summary>
    public static (int KeyHeads, int KeyWidth, int ValueHeads, int ValueWidth) KvShape(DecoderConfig config, int layer) =>
        config.Mla is { } mla
            ? (1, mla.KvLoraRank, 1, mla.QkRopeHeadDim)
            : (config.Layers[layer].KvHeadCount, config.HeadDim, config.Layers[layer].KvHeadCount, config.HeadDim);

    private void DeclareIo()
    {
        var c = _config;
        _g.Input("input_ids", TensorProto.Types.DataType.Int64, "batch_size", "sequence_length");
        _g.Input("attention_mask", TensorProto.Types.DataType.Int64, "batch_size", "total_sequence_length");
        if (!_genAi)
        {
            _g.Input("position_ids", TensorProto.Types.DataType.Int64, "batch_size", "sequence_length");
        }

        var kvLayers = AttentionLayers();

        for (var i = 0; i < kvLayers.Count; i++)
        {
            var (keyHeads, keyWidth, valueHeads, valueWidth) = KvShape(c, kvLayers[i]);
            _g.Input($"past_key_values.{i}.key", TensorProto.Types.DataType.Float, "batch_size", keyHeads, "past_sequence_length", keyWidth);
            _g.Input($"past_key_values.{i}.value", TensorProto.Types.DataType.Float, "batch_size", valueHeads, "past_sequence_length", valueWidth);
        }

        _g.Output("logits", TensorProto.Types.DataType.Float, "batch_size", "sequence_length", c.VocabSize);
        for (var i = 0; i < kvLayers.Count; i++)
        {
            var (keyHeads, keyWidth, valueHeads, valueWidth) = KvShape(c, kvLayers[i]);
            _g.Output($"present.{i}.key", TensorProto.Types.DataType.Float, "batch_size", keyHeads, "total_sequence_length", keyWidth);
            _g.Output($"present.{i}.value", TensorProto.Types.DataType.Float, "batch_size", valueHeads, "total_sequence_length", valueWidth);
        }
    }

    /// <summary>
    /// Shapes, the attention bias, and the RoPE cos/sin rows of this step's positions. The server right-pads: row r's
    /// past fills [0, past_r), [past_r, P) is masked, the new tokens sit at [P, P + S) for every row, and Attention's
    /// present (past ++ new) puts the new KV at P, where the runner expects it. The bias masks the holes and the padding:
    /// bias[b, 0, i, j] = 0 where key j is unmasked and j &lt;= P + i, else <see cref="MaskedScore"/>.
    /// </summary>
    private void Prologue()
    {
        _idsShape = _g.Node("Shape", "ids_shape", ["input_ids"]);
        var seq = _g.Node("Slice", "seq_1d", [_idsShape, _g.Int64s(1), _g.Int64s(2)]);
        var maskShape = _g.Node("Shape", "mask_shape", ["attention_mask"]);
        var total = _g.Node("Slice", "total_1d", [maskShape, _g.Int64s(1), _g.Int64s(2)]);
        var totalScalar = _g.Node("Squeeze", "total_scalar", [total, _g.Int64s(0)]);
        var seqScalar = _g.Node("Squeeze", "seq_scalar", [seq, _g.Int64s(0)]);
        var pastScalar = _g.Node("Sub", "past_scalar", [totalScalar, seqScalar]);

        var keyPositions = _g.Node("Range", "key_positions", [_g.Int64Scalar(0), totalScalar, _g.Int64Scalar(1)]);
        var queryPositions = _g.Node("Range", "query_positions", [pastScalar, totalScalar, _g.Int64Scalar(1)]);
        var queryColumn = _g.Node("Unsqueeze", "query_positions_column", [queryPositions, _g.Int64s(1)]);
        var allowed = _g.Node("LessOrEqual", "causal_allowed", [keyPositions, queryColumn]);
        var causal = _g.Node("Where", "causal_bias", [allowed, _g.FloatScalar(0f), _g.FloatScalar(MaskedScore)]);
        var maskFloat = _g.Node("Cast", "mask_float", ["attention_mask"], Attr("to", (long)TensorProto.Types.DataType.Float));
        var masked = _g.Node("Sub", "mask_inverted", [_g.FloatScalar(1f), maskFloat]);
        var padding = _g.Node("Mul", "padding_bias", [masked, _g.FloatScalar(MaskedScore)]);
        var padding4 = _g.Node("Unsqueeze", "padding_bias_4d", [padding, _g.Int64s(1, 2)]);
        _attentionBias = _g.Node("Add", "attention_bias", [padding4, causal]);

        var (cosCache, sinCache) = RopeCaches();
        if (RotaryOp)
        {
            // ONNX RotaryEmbedding reads the tables and the positions itself (ADR 0007).
            (_cos, _sin) = (cosCache, sinCache);
            return;
        }

        var cosRows = _g.Node("Gather", "rope_cos_rows", [cosCache, "position_ids"]);
        var sinRows = _g.Node("Gather", "rope_sin_rows", [sinCache, "position_ids"]);
        _cos = _g.Node("Unsqueeze", "rope_cos", [cosRows, _g.Int64s(2)]);
        _sin = _g.Node("Unsqueeze", "rope_sin", [sinRows, _g.Int64s(2)]);
    }

    /// <summary>The cos and sin tables <c>rope.cos_cache</c> / <c>rope.sin_cache</c>, [max_position_embeddings, rotary_dim / 2], as weights in T.</summary>
    private (string Cos, string Sin) RopeCaches()
    {
        var half = RotaryDim / 2;
        var positions = _config.MaxPositionEmbeddings;
        var (cos, sin) = RopeTables.Tables(_config.Rope, RotaryDim, positions);
        return (_g.Weight("rope.cos_cache", cos, positions, half), _g.Weight("rope.sin_cache", sin, positions, half));
    }

    /// <summary>
    /// <c>h + o_proj(attention(RMSNorm(h)))</c> for decoder layer <paramref name="layer"/>, cached as KV index
    /// <paramref name="kvIndex"/>: ONNX <c>Attention</c> in the dense graph, <c>PagedAttention</c> in the paged one.
    /// </summary>
    private string Attention(int layer, int kvIndex, string h)
    {
        var c = _config;
        var p = $"model.layers.{layer}.";
        var n = $"l{layer}_";
        var heads = c.Layers[layer].HeadCount;
        var x = RmsNorm(n + "input_norm", h, p + "input_layernorm.weight", c.HiddenSize);
        string attention2d;
        if (_paged && PacksQkv(p))
        {
            // One [q; k; v] projection handed to PagedAttention as packed QKV: one GEMM per layer instead of three.
            attention2d = PagedAttentionCore(layer, kvIndex, PackedQkvProjection(n, p, x, heads, c.Layers[layer].KvHeadCount), string.Empty, string.Empty);
        }
        else
        {
            var (q, k, v) = QkvProjections(n, p, x, heads, c.Layers[layer].KvHeadCount);
            attention2d = _paged ? PagedAttentionCore(layer, kvIndex, q, k, v)
                : _genAi ? GroupQueryAttentionCore(layer, kvIndex, q, k, v)
                : DenseAttentionCore(layer, kvIndex, q, k, v);
        }

        return AttentionResidual(layer, h, attention2d);
    }

    /// <summary><c>h + o_proj(attention2d)</c> for decoder layer <paramref name="layer"/>, attention2d being [rows, heads x d].</summary>
    private string AttentionResidual(int layer, string h, string attention2d)
    {
        var (p, n, heads, _, d) = LayerShape(layer);
        var o = MatMul(n + "o_proj", attention2d, p + "self_attn.o_proj.weight", _config.HiddenSize, heads * d);
        return Residual(n + "attention_residual", h, o);
    }

    /// <summary>The feed-forward block of decoder layer <paramref name="layer"/>: its MoE where <see cref="MoeConfig.IsMoeLayer"/>, else its MLP.</summary>
    private string FeedForward(int layer, string h) =>
        _config.Moe is { } moe && moe.IsMoeLayer(layer) ? MixtureOfExperts(layer, h, moe) : Mlp(layer, h);

    /// <summary>Layer <paramref name="layer"/>'s weight prefix, node-name prefix, query heads, KV heads and head width.</summary>
    private (string Prefix, string Name, int Heads, int KvHeads, int HeadDim) LayerShape(int layer) =>
        ($"model.layers.{layer}.", $"l{layer}_", _config.Layers[layer].HeadCount, _config.Layers[layer].KvHeadCount, _config.HeadDim);

    /// <summary>The dense graph's attention of layer <paramref name="layer"/> over projections [B x S, width]: [B x S, heads x d].</summary>
    private string DenseAttentionCore(int layer, int kvIndex, string q, string k, string v)
    {
        var c = _config;
        var (p, n, heads, kvHeads, d) = LayerShape(layer);
        string q3, k3;
        string? headMask = null;
        if (RotaryOp)
        {
            // The per-head views only where a q/k norm or the MoH router needs them; RotaryEmbedding takes [B, S, heads x d].
            var qNorm = HasHeadNorm(p + "self_attn.q_norm.weight");
            var qIn = q;
            if (qNorm || c.Moh is not null)
            {
                qIn = Heads(n + "q", q, heads, p + "self_attn.q_norm.weight");
                headMask = c.Moh is { } routed ? MohHeadMask(n, qIn, heads, routed) : null;
            }

            var kIn = HasHeadNorm(p + "self_attn.k_norm.weight") ? Heads(n + "k", k, kvHeads, p + "self_attn.k_norm.weight") : k;
            q3 = RotaryEmbedding(n + "q", _g.Node("Reshape", n + "q_3d", [qIn, Shape3(heads * d)]), heads);
            k3 = RotaryEmbedding(n + "k", _g.Node("Reshape", n + "k_3d", [kIn, Shape3(kvHeads * d)]), kvHeads);
        }
        else
        {
            var q4 = Heads(n + "q", q, heads, p + "self_attn.q_norm.weight");
            headMask = c.Moh is { } moh ? MohHeadMask(n, q4, heads, moh) : null;
            q3 = _g.Node("Reshape", n + "q_3d", [Rope(n + "q", q4), Shape3(heads * d)]);
            k3 = _g.Node("Reshape", n + "k_3d", [Rope(n + "k", Heads(n + "k", k, kvHeads, p + "self_attn.k_norm.weight")), Shape3(kvHeads * d)]);
        }

        var v3 = _g.Node("Reshape", n + "v_3d", [v, Shape3(kvHeads * d)]);

        var outputs = FusedAttention(
            n + "attention", q3, k3, v3, $"past_key_values.{kvIndex}.key", $"past_key_values.{kvIndex}.value",
            $"present.{kvIndex}.key", $"present.{kvIndex}.value", heads, kvHeads, 1.0 / Math.Sqrt(d));

        var attention = outputs[0];
        if (headMask is not null)
        {
            var perHead = _g.Node("Reshape", n + "attention_heads", [attention, _g.Node("Concat", n + "attention_heads_shape", [_idsShape, _g.Int64s(heads, d)], Attr("axis", 0L))]);
            attention = _g.Node("Mul", n + "attention_moh", [perHead, headMask]);
        }

        return _g.Node("Reshape", n + "attention_2d", [attention, _g.Int64s(-1, heads * d)]);
    }

    /// <summary>The q, k and v projections [rows, heads x d] of layer prefix <paramref name="p"/> (Phi-3's fused qkv split by columns).</summary>
    private (string Q, string K, string V) QkvProjections(string n, string p, string x, int heads, int kvHeads)
    {
        var c = _config;
        var d = c.HeadDim;
        if (_weights.Contains(p + "self_attn.qkv_proj.weight") || FuseKernels)
        {
            // One [q; k; v] projection (Phi-3's fused qkv, or with FuseKernels the three packed by rows), split by columns.
            var qkv = PackedQkvProjection(n, p, x, heads, kvHeads);
            var parts = _g.NodeMulti("Split", n + "qkv_split", [qkv, _g.Int64s(heads * d, kvHeads * d, kvHeads * d)], [n + "q_proj", n + "k_proj", n + "v_proj"], [Attr("axis", -1L)], string.Empty);
            return (parts[0], parts[1], parts[2]);
        }

        return (
            Projection(n + "q_proj", x, p + "self_attn.q_proj", heads * d, c.HiddenSize),
            Projection(n + "k_proj", x, p + "self_attn.k_proj", kvHeads * d, c.HiddenSize),
            Projection(n + "v_proj", x, p + "self_attn.v_proj", kvHeads * d, c.HiddenSize));
    }

    /// <summary>
    /// Whether the paged graph feeds layer prefix <paramref name="p"/>'s attention one packed [q | k | v] projection: when
    /// nothing sits between the projections and PagedAttention (no Qwen3 q/k norm, no MoH router reading the queries).
    /// </summary>
    private bool PacksQkv(string p) =>
        _config.Moh is null && !HasHeadNorm(p + "self_attn.q_norm.weight") && !HasHeadNorm(p + "self_attn.k_norm.weight");

    /// <summary>
    /// The packed [rows, (heads + 2 kv_heads) x d] projection: Phi-3's fused qkv as it is, else the q, k and v weights (and
    /// biases, zero where one is absent) concatenated by rows into one weight.
    /// </summary>
    private string PackedQkvProjection(string n, string p, string x, int heads, int kvHeads)
    {
        var c = _config;
        var d = c.HeadDim;
        if (_weights.Contains(p + "self_attn.qkv_proj.weight"))
        {
            return Projection(n + "qkv_proj", x, p + "self_attn.qkv_proj", (heads + (2 * kvHeads)) * d, c.HiddenSize);
        }

        (string Name, int Rows)[] parts = [(p + "self_attn.q_proj", heads * d), (p + "self_attn.k_proj", kvHeads * d), (p + "self_attn.v_proj", kvHeads * d)];
        var total = (heads + (2 * kvHeads)) * d;
        var weight = new float[(long)total * c.HiddenSize];
        var bias = new float[total];
        var hasBias = false;
        var row = 0;
        foreach (var (name, rows) in parts)
        {
            _weights.ReadFloat32(name + ".weight", rows, c.HiddenSize).CopyTo(weight, (long)row * c.HiddenSize);
            if (_weights.Contains(name + ".bias"))
            {
                _weights.ReadFloat32(name + ".bias", rows).CopyTo(bias, row);
                hasBias = true;
            }

            row += rows;
        }

        if (Quantizer is not null)
        {
            var projected = MatMul(n + "qkv_proj", x, p + "self_attn.qkv_packed.weight", weight, total, c.HiddenSize);
            return hasBias ? _g.Node("Add", n + "qkv_proj_bias", [projected, _g.Weight(p + "self_attn.qkv_packed.bias", bias, total)]) : projected;
        }

        var packedWeight = _g.Weight(p + "self_attn.qkv_packed.weight", weight, total, c.HiddenSize);
        return hasBias
            ? _g.Node("Gemm", n + "qkv_proj", [x, packedWeight, _g.Weight(p + "self_attn.qkv_packed.bias", bias, total)], Attr("transB", 1L))
            : _g.Node("Gemm", n + "qkv_proj", [x, packedWeight], Attr("transB", 1L));
    }

    /// <summary>
    /// One ONNX <c>Attention</c> node: 3-D queries [B, S, heads x dk], keys [B, S, kv_heads x dk] and values
    /// [B, S, kv_heads x dv] (grouped-query when kv_heads &lt; heads), the past as [B, kv_heads, P, d], the shared additive
    /// bias as the mask (not <c>is_causal</c>: the bias already holds the causal rule for the padded layout), and the
    /// present = past ++ new written straight to the graph outputs. Returns [output, present key, present value].
    /// </summary>
    private IReadOnlyList<string> FusedAttention(
        string name, string query, string key, string value, string pastKey, string pastValue, string presentKey, string presentValue, int heads, int kvHeads, double scale) =>
        _g.NodeMulti(
            AttentionOpType,
            name,
            [query, key, value, _attentionBias, pastKey, pastValue],
            [name, presentKey, presentValue],
            [Attr("q_num_heads", (long)heads), Attr("kv_num_heads", (long)kvHeads), Attr("scale", (float)scale), Attr("is_causal", 0L)],
            string.Empty);

    /// <summary><c>h + down(SiLU(gate(y)) * up(y))</c> with <c>y = RMSNorm(h)</c>.</summary>
    private string Mlp(int layer, string h)
    {
        var c = _config;
        var p = $"model.layers.{layer}.";
        var n = $"l{layer}_";
        var width = c.Layers[layer].IntermediateSize;
        var y = RmsNorm(n + "post_attention_norm", h, p + "post_attention_layernorm.weight", c.HiddenSize);
        var (gate, up) = GateUpProjections(n, p, y, width);
        var sigmoid = _g.Node("Sigmoid", n + "gate_sigmoid", [gate]);
        var silu = _g.Node("Mul", n + "gate_silu", [gate, sigmoid]);
        var product = _g.Node("Mul", n + "gate_up", [silu, up]);
        var down = MatMul(n + "down_proj", product, p + "mlp.down_proj.weight", c.HiddenSize, width);
        return Residual(n + "mlp_residual", h, down);
    }

    /// <summary>
    /// The MoH head mask [B, S, heads, 1] from the pre-RoPE queries [B, S, heads, D]: 1 for the shared heads; for the
    /// routed heads, score = L2 norm of the head's query / unbiased std of those norms across the routed heads,
    /// softmax, and 1 for the top <see cref="MohConfig.RoutedActiveHeads"/>, else 0.
    /// </summary>
    private string MohHeadMask(string n, string q4, int heads, MohConfig moh) => MohRouting(n, q4, heads, moh).Mask;

    /// <summary>
    /// <see cref="MohHeadMask"/> and the router's choice behind it: the top <see cref="MohConfig.RoutedActiveHeads"/>
    /// routed heads' indices among the routed heads, [B, S, routed active] int64, best first.
    /// </summary>
    private (string Mask, string TopIndices) MohRouting(string n, string q4, int heads, MohConfig moh)
    {
        var routedCount = heads - moh.SharedHeads;
        var routed = _g.Node("Slice", n + "moh_routed_q", [q4, _g.Int64s(moh.SharedHeads), _g.Int64s(heads), _g.Int64s(2)]);
        var norms = _g.Node("ReduceL2", n + "moh_norms", [routed, _g.Int64s(-1)], Attr("keepdims", 0L));
        var mean = _g.Node("ReduceMean", n + "moh_mean", [norms, _g.Int64s(-1)], Attr("keepdims", 1L));
        var deviation = _g.Node("Sub", n + "moh_deviation", [norms, mean]);
        var squared = _g.Node("Mul", n + "moh_deviation_sq", [deviation, deviation]);
        var sum = _g.Node("ReduceSum", n + "moh_deviation_sum", [squared, _g.Int64s(-1)], Attr("keepdims", 1L));
        var variance = _g.Node("Div", n + "moh_variance", [sum, _g.FloatScalar(routedCount - 1)]);
        var std = _g.Node("Sqrt", n + "moh_std", [variance]);
        var scores = _g.Node("Div", n + "moh_scores", [norms, std]);
        var probabilities = _g.Node("Softmax", n + "moh_probabilities", [scores], Attr("axis", -1L));
        var top = _g.NodeMulti("TopK", n + "moh_topk", [probabilities, _g.Int64s(moh.RoutedActiveHeads)], [n + "moh_top_values", n + "moh_top_indices"], [Attr("axis", -1L)], string.Empty);
        var threshold = _g.Node("ReduceMin", n + "moh_threshold", [top[0], _g.Int64s(-1)], Attr("keepdims", 1L));
        var on = _g.Node("GreaterOrEqual", n + "moh_on", [probabilities, threshold]);
        var routedMask = _g.Node("Cast", n + "moh_routed_mask", [on], Attr("to", (long)TensorProto.Types.DataType.Float));
        var mask = _g.Node("Pad", n + "moh_mask", [routedMask, _g.Int64s(moh.SharedHeads, 0), _g.FloatScalar(1f), _g.Int64s(-1)]);
        return (_g.Node("Unsqueeze", n + "moh_mask_4d", [mask, _g.Int64s(3)]), top[1]);
    }

    /// <summary>Reshapes a projection to [B, S, heads, D] and applies the optional per-head RMSNorm (Qwen3 q_norm / k_norm).</summary>
    private string Heads(string prefix, string projection, int headCount, string normWeight)
    {
        var d = _config.HeadDim;
        var shape4 = _g.Node("Concat", prefix + "_shape_4d", [_idsShape, _g.Int64s(headCount, d)], Attr("axis", 0L));
        var x = _g.Node("Reshape", prefix + "_4d", [projection, shape4]);
        return HasHeadNorm(normWeight) ? RmsNorm(prefix + "_norm", x, normWeight, d) : x;
    }

    /// <summary>Whether the checkpoint has per-head norm <paramref name="normWeight"/>; Qwen3 must.</summary>
    private bool HasHeadNorm(string normWeight) =>
        _weights.Contains(normWeight)
        || (_config.ModelType is "qwen3" or "qwen3_moe" ? throw new ModelBuildException($"qwen3 checkpoint has no {normWeight}") : false);

    /// <summary>Rotates the first <see cref="RotaryDim"/> dims of [B, S, N, D] in halves: (x1 cos - x2 sin, x2 cos + x1 sin).</summary>
    private string Rope(string prefix, string x) => Rope(prefix, x, _config.HeadDim);

    /// <summary>As <see cref="Rope(string, string)"/> for a tensor whose last axis is <paramref name="d"/> wide.</summary>
    private string Rope(string prefix, string x, int d)
    {
        var rot = RotaryDim;
        var half = rot / 2;
        string pass = string.Empty;
        if (rot < d)
        {
            var parts = _g.NodeMulti("Split", prefix + "_rope_split_pass", [x, _g.Int64s(rot, d - rot)], [prefix + "_rot", prefix + "_pass"], [Attr("axis", -1L)], string.Empty);
            x = parts[0];
            pass = parts[1];
        }

        var halves = _g.NodeMulti("Split", prefix + "_rope_split", [x, _g.Int64s(half, half)], [prefix + "_x1", prefix + "_x2"], [Attr("axis", -1L)], string.Empty);
        var x1 = halves[0];
        var x2 = halves[1];
        var x1Cos = _g.Node("Mul", prefix + "_x1_cos", [x1, _cos]);
        var x2Sin = _g.Node("Mul", prefix + "_x2_sin", [x2, _sin]);
        var x2Cos = _g.Node("Mul", prefix + "_x2_cos", [x2, _cos]);
        var x1Sin = _g.Node("Mul", prefix + "_x1_sin", [x1, _sin]);
        var first = _g.Node("Sub", prefix + "_rope_first", [x1Cos, x2Sin]);
        var second = _g.Node("Add", prefix + "_rope_second", [x2Cos, x1Sin]);
        var rotated = _g.Node("Concat", prefix + "_roped", [first, second], Attr("axis", -1L));
        return rot < d ? _g.Node("Concat", prefix + "_roped_full", [rotated, pass], Attr("axis", -1L)) : rotated;
    }

    /// <summary>The shape [B, S, <paramref name="width"/>] from the ids' shape: with <see cref="FuseKernels"/> one Concat per width per graph, shared by the layers.</summary>
    private string Shape3(int width)
    {
        if (!_shape3.TryGetValue(width, out var shape))
        {
            shape = _g.Node("Concat", "shape_3d_" + width.ToString(CultureInfo.InvariantCulture) + "_" + _g.NodeCount.ToString(CultureInfo.InvariantCulture), [_idsShape, _g.Int64s(width)], Attr("axis", 0L));
            if (FuseKernels)
            {
                _shape3.Add(width, shape);
            }
        }

        return shape;
    }

    /// <summary><c>x @ W^T (+ b)</c> for the checkpoint's linear layer <paramref name="prefix"/> (bias used when present).</summary>
    private string Projection(string name, string x, string prefix, int outFeatures, int inFeatures)
    {
        if (Quantizer is not null)
        {
            // MatMulNBits' optional bias input is not in every ONNX Runtime release; an Add is.
            return _weights.Contains(prefix + ".bias")
                ? _g.Node("Add", name, [MatMul(name + "_nobias", x, prefix + ".weight", outFeatures, inFeatures), _g.Weight(prefix + ".bias", _weights.ReadFloat32(prefix + ".bias", outFeatures), outFeatures)])
                : MatMul(name, x, prefix + ".weight", outFeatures, inFeatures);
        }

        var weight = Linear(prefix + ".weight", outFeatures, inFeatures);
        if (_weights.Contains(prefix + ".bias"))
        {
            var bias = _g.Weight(prefix + ".bias", _weights.ReadFloat32(prefix + ".bias", outFeatures), outFeatures);
            return _g.Node("Gemm", name, [x, weight, bias], Attr("transB", 1L));
        }

        return _g.Node("Gemm", name, [x, weight], Attr("transB", 1L));
    }

    private string Linear(string name, int outFeatures, int inFeatures) =>
        _g.Weight(name, _weights.ReadFloat32(name, outFeatures, inFeatures), outFeatures, inFeatures);
}
