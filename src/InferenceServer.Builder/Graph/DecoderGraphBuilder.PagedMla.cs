// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Checkpoint;
using InferenceServer.Builder.Onnx.Proto;
using static InferenceServer.Builder.Graph.OnnxGraphWriter;

namespace InferenceServer.Builder.Graph;

/// <summary>
/// Multi-head latent attention in the paged graph (ADR 0008). The pools are what MLA caches and nothing more:
/// <c>key_cache.{i}</c> [num_blocks, block_size, 1, kv_lora_rank] holds the (normalized) latent,
/// <c>value_cache.{i}</c> [num_blocks, block_size, 1, qk_rope_head_dim] the shared roped key. ONNX Runtime's
/// PagedAttention cannot run the absorbed form (its key and value widths must be equal and FlashAttention stops at
/// head size 256; the absorbed key is kv_lora_rank + rope = 576 wide for DeepSeek-V2/V3), so attention is written with
/// plain ops over gathered blocks: this step's latent and rope key are scattered into the pools in place
/// (<c>ScatterND</c> straight to <c>*_cache_out</c>, which the runner binds to the input's buffer), each row's blocks
/// are gathered ([B, L, width], L = max_blocks x block_size), and every query head of every row attends with one
/// batched <c>MatMul</c> against its row's one shared key (multi-query attention: the absorbed query
/// [W_uk^T q_nope, q_rope] . [latent, rope key], the latent as the value); W_uv and o_proj follow as in the dense graph.
/// Only ops with CUDA kernels in fp16 and bf16 touch T (no Einsum, no Where in T).
/// Rows are padded to the step's most new tokens (<c>attention_metadata[0]</c>); a key is visible to a row's query j
/// when its position is at most past + j.
/// </summary>
internal sealed partial class DecoderGraphBuilder
{
    /// <summary>The additive bias of a hidden key: softmax turns it into 0; a score plus it stays finite in fp16.</summary>
    private const float MaskedScoreT = -30000f;

    // The paged MLA prologue's values, shared by every layer.
    private string _mlaSlots = string.Empty;
    private string _mlaPadRows = string.Empty;
    private string _mlaTokenRows = string.Empty;
    private string _mlaMaskBias = string.Empty;
    private string _mlaRowCount = string.Empty;
    private string _mlaMaxNew = string.Empty;
    private string _mlaPositionIds = string.Empty;
    private string _mlaCosCache = string.Empty;
    private string _mlaSinCache = string.Empty;
    private string _mlaKeys = string.Empty;
    private readonly Dictionary<string, string> _mlaShapes = new(StringComparer.Ordinal);

    /// <summary>
    /// Per-token bookkeeping of the packed step, once: each token's row, position (past + index in the row), cache
    /// slot [block, offset] from <c>block_table</c>; the padded query layout [B x max_new] (which token fills each
    /// place, and each token's place); the additive visibility bias [B, max_new, 1, L] in T (built by a float Where: ONNX
    /// Runtime's CUDA Where has no bf16 kernel); the RoPE rows of the positions as
    /// [1, T, 1, rope / 2] (the dense builder's <c>Rope</c> then applies unchanged with <c>_idsShape</c> = [1, T]).
    /// <para>
    /// Written so that ONNX Runtime places it without a host/device copy node, which is what CUDA graph capture needs
    /// (ADR 0008): values that shapes are made of (the token count, the pool's block size, the table width, max_new)
    /// stay on the host and reach device kernels only through inputs those kernels read on the host (<c>Range</c>'s
    /// bounds, <c>Expand</c>'s and <c>Reshape</c>'s shapes); what device arithmetic needs of them is made on the device
    /// (the last token index by <c>ReduceMax</c>, the block size by summing an <c>Expand</c>ed one), and the block table
    /// is read through int64 (CUDA's GatherND has no int32 kernel). With
    /// <c>attention_metadata</c>, max_new is read on the host: an <c>Add</c> of a host zero (from a <c>Shape</c>)
    /// makes ONNX Runtime's CPU fallback keep that input and its slice on the host, as PagedAttention reads it.
    /// </para>
    /// </summary>
    private void PagedMlaPrologue(string cosTable, string sinTable)
    {
        const long I64 = (long)TensorProto.Types.DataType.Int64;
        var tokens = _g.Node("Shape", "mla_tokens", ["input_ids"]);
        _idsShape = _g.Node("Concat", "ids_shape", [_g.Int64s(1), tokens], Attr("axis", 0L));
        var tokenCount = _g.Node("Squeeze", "mla_token_count", [tokens, _g.Int64s(0)]);
        var cumulative = _g.Node("Cast", "mla_cumulative", ["cumulative_sequence_length"], Attr("to", I64));
        var starts = _g.Node("Slice", "mla_starts", [cumulative, _g.Int64s(0), _g.Int64s(-1)]);
        var ends = _g.Node("Slice", "mla_ends", [cumulative, _g.Int64s(1), _g.Int64s(long.MaxValue)]);
        var past = _g.Node("Cast", "mla_past", ["past_seqlens"], Attr("to", I64));
        _mlaRowCount = _g.Node("Shape", "mla_rows", ["past_seqlens"]);
        if (AttentionMetadata)
        {
            var hostZero = _g.Node("Cast", "mla_host_zero", [_g.Node("Mul", "mla_host_zero_i64", [_mlaRowCount, _g.Int64s(0)])], Attr("to", (long)TensorProto.Types.DataType.Int32));
            var metadata = _g.Node("Add", "mla_metadata_host", [AttentionMetadataInput, hostZero]);
            _mlaMaxNew = _g.Node("Cast", "mla_max_new", [_g.Node("Slice", "mla_max_new_i32", [metadata, _g.Int64s(0), _g.Int64s(1)])], Attr("to", I64));
        }
        else
        {
            _mlaMaxNew = _g.Node("ReduceMax", "mla_max_new", [_g.Node("Sub", "mla_new_counts", [ends, starts]), _g.Int64s(0)], Attr("keepdims", 1L));
        }

        // Token t's row: how many rows end at or before t. Its index in the row and its position follow.
        var tokenIndex = _g.Node("Range", "mla_token_index", [_g.Int64Scalar(0), tokenCount, _g.Int64Scalar(1)]);
        var ended = _g.Node("GreaterOrEqual", "mla_rows_ended", [_g.Node("Unsqueeze", "mla_token_column", [tokenIndex, _g.Int64s(1)]), ends]);
        var row = _g.Node("ReduceSum", "mla_token_row", [_g.Node("Cast", "mla_rows_ended_i64", [ended], Attr("to", I64)), _g.Int64s(1)], Attr("keepdims", 0L));
        var inRow = _g.Node("Sub", "mla_token_in_row", [tokenIndex, _g.Node("Gather", "mla_token_row_start", [starts, row])]);
        var position = _g.Node("Add", "mla_position", [_g.Node("Gather", "mla_token_row_past", [past, row]), inRow]);

        // Cache slot [physical block, offset] of each token; the block size on the device is a sum of that many ones.
        var blockSize = _g.Node("Slice", "mla_block_size", [_g.Node("Shape", "mla_pool_shape", ["key_cache.0"]), _g.Int64s(1), _g.Int64s(2)]);
        var blockSizeDevice = _g.Node("ReduceSum", "mla_block_size_device", [_g.Node("Expand", "mla_block_ones", [_g.Int64s(1), blockSize]), _g.Int64s(0)], Attr("keepdims", 0L));
        var logical = _g.Node("Div", "mla_logical_block", [position, blockSizeDevice]);
        var offset = _g.Node("Mod", "mla_block_offset", [position, blockSizeDevice]);
        var tableIndex = _g.Node("Concat", "mla_table_index", [_g.Node("Unsqueeze", "mla_row_column", [row, _g.Int64s(1)]), _g.Node("Unsqueeze", "mla_logical_column", [logical, _g.Int64s(1)])], Attr("axis", 1L));
        // GatherND over the int64 table: ONNX Runtime's CUDA GatherND has no int32 kernel, and the CPU one costs three copies.
        var physical = _g.Node("GatherND", "mla_physical_block", [_g.Node("Cast", "mla_table_i64", ["block_table"], Attr("to", I64)), tableIndex]);
        _mlaSlots = _g.Node("Concat", "mla_slots", [_g.Node("Unsqueeze", "mla_physical_column", [physical, _g.Int64s(1)]), _g.Node("Unsqueeze", "mla_offset_column", [offset, _g.Int64s(1)])], Attr("axis", 1L));

        // Padded query layout: place (b, j) holds token starts[b] + j (clamped: padding places are computed, never read).
        var maxNewScalar = _g.Node("Squeeze", "mla_max_new_scalar", [_mlaMaxNew, _g.Int64s(0)]);
        var places = _g.Node("Range", "mla_places", [_g.Int64Scalar(0), maxNewScalar, _g.Int64Scalar(1)]);
        var maxNewDevice = AttentionMetadata
            ? _g.Node("Add", "mla_max_new_device", [_g.Node("ReduceMax", "mla_last_place", [places, _g.Int64s(0)], Attr("keepdims", 0L)), _g.Int64Scalar(1)])
            : maxNewScalar;
        var placeTokens = _g.Node("Add", "mla_place_tokens", [_g.Node("Unsqueeze", "mla_starts_column", [starts, _g.Int64s(1)]), places]);
        var lastToken = _g.Node("ReduceMax", "mla_last_token", [tokenIndex, _g.Int64s(0)], Attr("keepdims", 0L));
        _mlaPadRows = _g.Node("Reshape", "mla_pad_rows", [_g.Node("Min", "mla_place_tokens_clamped", [placeTokens, lastToken]), _g.Int64s(-1)]);
        _mlaTokenRows = _g.Node("Add", "mla_token_place", [_g.Node("Mul", "mla_row_base", [row, maxNewDevice]), inRow]);

        // Visibility [B, max_new, 1, L]: key l is visible to place (b, j) when l <= past[b] + j.
        var maxBlocks = _g.Node("Slice", "mla_max_blocks", [_g.Node("Shape", "mla_table_shape", ["block_table"]), _g.Int64s(1), _g.Int64s(2)]);
        _mlaKeys = _g.Node("Mul", "mla_keys", [maxBlocks, blockSize]);
        var keyCount = _g.Node("Squeeze", "mla_key_count", [_mlaKeys, _g.Int64s(0)]);
        var keys = _g.Node("Range", "mla_key_positions", [_g.Int64Scalar(0), keyCount, _g.Int64Scalar(1)]);
        var last = _g.Node("Add", "mla_place_last_key", [_g.Node("Unsqueeze", "mla_past_column", [past, _g.Int64s(1)]), places]);
        var visible = _g.Node("LessOrEqual", "mla_visible_3d", [keys, _g.Node("Unsqueeze", "mla_place_last_key_3d", [last, _g.Int64s(2)])]);
        var bias = _g.Node("Where", "mla_visible_bias_f32", [_g.Node("Unsqueeze", "mla_visible", [visible, _g.Int64s(2)]), _g.FloatScalar(0f), _g.FloatScalar(MaskedScoreT)]);
        _mlaMaskBias = _g.ElementType == TensorProto.Types.DataType.Float ? bias : _g.Node("Cast", "mla_visible_bias", [bias], Attr("to", (long)_g.ElementType));

        // RoPE: the tables and the tokens' positions [T, 1], for MlaRotary.
        _mlaPositionIds = _g.Node("Unsqueeze", "mla_position_ids", [position, _g.Int64s(1)]);
        (_mlaCosCache, _mlaSinCache) = (cosTable, sinTable);
    }

    /// <summary>
    /// RoPE of <paramref name="x"/> ([T, heads x d] rows in any shape) as one <c>com.microsoft.RotaryEmbedding</c> over the
    /// tables' rows at the tokens' positions (rotated in halves, the first rotary_dim of each head; the rest passed
    /// through): one kernel where the ONNX form (<see cref="Rope(string, string, int)"/>) is nine (two Splits, four Muls,
    /// Sub, Add, Concat). The paged MLA graph runs it twice a layer, for the query's and the shared key's rope parts: at
    /// the dense MLA 1B shape that is 18 of a layer's ~57 kernels, where the GQA layer (PagedAttention rotating inside)
    /// has about 11 (bench/results/gpu-2026-12-07-h100-run7.md). [T, 1, heads x d] out.
    /// </summary>
    private string MlaRotary(string prefix, string x, int heads, int d)
    {
        List<AttributeProto> attributes = [Attr("interleaved", 0L), Attr("num_heads", (long)heads)];
        if (RotaryDim < d)
        {
            attributes.Add(Attr("rotary_embedding_dim", (long)RotaryDim));
        }

        // The packed tokens as T sequences of one token ([T, 1, heads x d], positions [T, 1]): the op refuses a sequence
        // longer than its tables (ONNX Runtime: "Updating cos_cache and sin_cache in RotaryEmbedding is not currently
        // supported"; the CUDA kernel has no packed-batching exception), and a packed step of many prompts is longer than
        // max_position_embeddings long before any one row is (2026-12-07 H100: 64 prompts of 128 tokens against the
        // dense MLA 1B's 4096 rows failed every step).
        var rows = _g.Node("Reshape", prefix + "_rotary_in", [x, _g.Int64s(-1, 1, heads * d)]);
        return _g.NodeMulti("RotaryEmbedding", prefix + "_rotary", [rows, _mlaPositionIds, _mlaCosCache, _mlaSinCache], [prefix + "_rotary_out"], [.. attributes], PagedAttentionDomain)[0];
    }

    /// <summary>
    /// Layer <paramref name="layer"/>'s latent attention over the pools of KV index <paramref name="kvIndex"/>: write this
    /// step's latent and rope key, gather each row's, attend (absorbed, multi-query), and return <c>h + o_proj(...)</c>.
    /// </summary>
    private string PagedLatentAttention(int layer, int kvIndex, string h, MlaConfig mla)
    {
        var n = $"l{layer}_";
        var heads = _config.Layers[layer].HeadCount;
        var rank = mla.KvLoraRank;
        var rope = mla.QkRopeHeadDim;
        var width = rank + rope;
        var (query, key, latent, scale) = LatentAttentionInputs(layer, h, mla);

        // This step's rows into the pools, in place.
        var latentRows = _g.Node("Reshape", n + "mla_latent_rows", [latent, _g.Int64s(-1, 1, rank)]);
        var ropeRows = _g.Node("Reshape", n + "mla_rope_rows", [key, _g.Int64s(-1, 1, rope)]);
        var latentPool = _g.NodeMulti("ScatterND", n + "mla_write_latent", [$"key_cache.{kvIndex}", _mlaSlots, latentRows], [$"key_cache_out.{kvIndex}"], [], string.Empty)[0];
        var ropePool = _g.NodeMulti("ScatterND", n + "mla_write_rope", [$"value_cache.{kvIndex}", _mlaSlots, ropeRows], [$"value_cache_out.{kvIndex}"], [], string.Empty)[0];

        // Each row's keys: [B, L, rank] latents and [B, L, rope] rope keys.
        var latents = _g.Node("Reshape", n + "mla_row_latents", [_g.Node("Gather", n + "mla_gather_latents", [latentPool, "block_table"], Attr("axis", 0L)), _g.Int64s(0, -1, rank)]);
        var ropeKeys = _g.Node("Reshape", n + "mla_row_rope_keys", [_g.Node("Gather", n + "mla_gather_rope_keys", [ropePool, "block_table"], Attr("axis", 0L)), _g.Int64s(0, -1, rope)]);

        // Queries, scaled, in the padded layout [B, max_new x heads, width], split into latent and rope parts.
        // The query comes scaled (its weights carry the softmax scale, LatentAttentionInputs).
        var scaled = _g.Node("Reshape", n + "mla_query_2d", [query, _g.Int64s(-1, heads * width)]);
        if (scale != 1.0)
        {
            scaled = _g.Node("Mul", n + "mla_query_scaled", [scaled, _g.ElementScalar((float)scale)]);
        }

        var paddedShape = SharedMlaShape("mla_query_padded_shape_" + width.ToString(System.Globalization.CultureInfo.InvariantCulture), [_mlaRowCount, _g.Int64s(-1, width)]);
        var padded = _g.Node("Reshape", n + "mla_query_padded", [_g.Node("Gather", n + "mla_query_places", [scaled, _mlaPadRows], Attr("axis", 0L)), paddedShape]);
        if (MlaMhaAttention)
        {
            return LatentAttentionOutput(layer, h, MhaAttention(n, heads, rank, padded, latents, ropeKeys), mla);
        }

        var parts = _g.NodeMulti("Split", n + "mla_query_split", [padded, _g.Int64s(rank, rope)], [n + "mla_query_latent", n + "mla_query_rope"], [Attr("axis", -1L)], string.Empty);

        // Scores [B, max_new, heads, L]: one shared key per row for every head; masked; softmax over keys.
        var latentScores = _g.Node("MatMul", n + "mla_latent_scores", [parts[0], _g.Node("Transpose", n + "mla_latents_t", [latents], Attr("perm", [0L, 2L, 1L]))]);
        var ropeScores = _g.Node("MatMul", n + "mla_rope_scores", [parts[1], _g.Node("Transpose", n + "mla_rope_keys_t", [ropeKeys], Attr("perm", [0L, 2L, 1L]))]);
        var scoresShape = SharedMlaShape("mla_scores_shape_" + heads.ToString(System.Globalization.CultureInfo.InvariantCulture), [_mlaRowCount, _mlaMaxNew, _g.Int64s(heads, -1)]);
        var scores = _g.Node("Reshape", n + "mla_scores", [_g.Node("Add", n + "mla_scores_3d", [latentScores, ropeScores]), scoresShape]);
        var masked = _g.Node("Add", n + "mla_scores_masked", [scores, _mlaMaskBias]);
        var weights = _g.Node("Softmax", n + "mla_weights", [masked], Attr("axis", -1L));

        // Weighted latents [B, max_new x heads, rank] -> each token's [T, heads x rank].
        // Every layer gathers the same L = max_blocks x block_size keys: the prologue's count serves them all.
        var weights3 = _g.Node("Reshape", n + "mla_weights_3d", [weights, SharedMlaShape("mla_weights_shape", [_mlaRowCount, _g.Int64s(-1), _mlaKeys])]);
        var output = _g.Node("MatMul", n + "mla_weighted_latents", [weights3, latents]);
        var perPlace = _g.Node("Reshape", n + "mla_place_outputs", [output, _g.Int64s(-1, heads * rank)]);
        var perToken = _g.Node("Gather", n + "mla_token_outputs", [perPlace, _mlaTokenRows], Attr("axis", 0L));
        return LatentAttentionOutput(layer, h, perToken, mla);
    }

    /// <summary>
    /// Whether <see cref="BuildPaged"/> attends MLA layers with ONNX Runtime 1.31's <c>PagedAttention</c> in its LATENT
    /// layout (<see cref="PagedLatentAttentionOp"/>) instead of the gather form (<see cref="PagedLatentAttention"/>).
    /// </summary>
    public bool MlaLatentAttention { get; init; }

    /// <summary>
    /// Layer <paramref name="layer"/>'s latent attention as one <c>PagedAttention</c> in its LATENT layout (ADR 0008):
    /// the absorbed query [T, heads x (rank + rope)] and the shared key [latent, rope key] [T, rank + rope], both with
    /// their rope parts unrotated (the op rotates channels [rank, rank + rope) of each head: <c>rotary_offset</c> = rank,
    /// the tables whole), written to the layer's one pool and attended in place; every head's value is the pool row's
    /// first rank channels, so the output is [T, heads x rank], which W_uv and o_proj take as in the gather form.
    /// </summary>
    private string PagedLatentAttentionOp(int layer, int kvIndex, string h, MlaConfig mla)
    {
        var n = $"l{layer}_";
        var heads = _config.Layers[layer].HeadCount;
        var width = mla.KvLoraRank + mla.QkRopeHeadDim;
        var (query, key, _, scale) = LatentAttentionInputs(layer, h, mla);
        var q = _g.Node("Reshape", n + "mla_query_rows", [query, _g.Int64s(-1, heads * width)]);
        var k = _g.Node("Reshape", n + "mla_key_rows", [key, _g.Int64s(-1, width)]);
        var outputs = _g.NodeMulti(
            PagedAttentionOpType,
            n + "attention",
            PagedAttentionInputs(q, k, string.Empty, $"key_cache.{kvIndex}", string.Empty),
            [n + "attention", $"key_cache_out.{kvIndex}"],
            [
                Attr("num_heads", (long)heads), Attr("kv_num_heads", 1L), Attr("scale", (float)scale),
                Attr("do_rotary", 1L), Attr("rotary_interleaved", 0L), Attr("rotary_offset", (long)mla.KvLoraRank),
                Attr("kv_cache_layout", "LATENT"), Attr("v_head_size", (long)mla.KvLoraRank),
            ],
            PagedAttentionDomain);
        return LatentAttentionOutput(layer, h, outputs[0], mla);
    }

    /// <summary>
    /// Whether <see cref="BuildPaged"/> attends MLA layers over the gathered blocks with one <c>com.microsoft.MultiHeadAttention</c>
    /// a layer (<see cref="MhaAttention"/>, <c>--mla-attention mha</c>) instead of the score MatMuls, mask and Softmax.
    /// </summary>
    public bool MlaMhaAttention { get; init; }

    /// <summary>
    /// The gathered blocks attended by one <c>MultiHeadAttention</c> with a single head whose query rows are a row's
    /// padded places times its heads (<paramref name="padded"/>, [B, max_new x heads, rank + rope], scaled): key the
    /// [latent, rope key] rows ([B, L, rank + rope]), value the latents ([B, L, rank]), the visibility as
    /// <c>attention_bias</c> ([B, 1, max_new x heads, L], made once a step per head count). The same products as the
    /// gather form; on CUDA one fused kernel (CUTLASS's memory-efficient attention: FlashAttention stops at 256 wide)
    /// where the gather form runs two score MatMuls, an Add, a Softmax and an output MatMul. fp16 and fp32 only: ONNX
    /// Runtime has no bf16 kernel for the op. Returns each token's [T, heads x rank].
    /// </summary>
    private string MhaAttention(string n, int heads, int rank, string padded, string latents, string ropeKeys)
    {
        var keys = _g.Node("Concat", n + "mla_row_keys", [latents, ropeKeys], Attr("axis", -1L));
        var headsText = heads.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (!_mlaShapes.TryGetValue("mla_mha_bias_" + headsText, out var bias))
        {
            var expanded = _g.Node("Expand", "mla_mha_bias_expanded_" + headsText, [_mlaMaskBias, SharedMlaShape("mla_mha_bias_expand_" + headsText, [_mlaRowCount, _mlaMaxNew, _g.Int64s(heads), _mlaKeys])]);
            bias = _g.Node("Reshape", "mla_mha_bias_" + headsText, [expanded, SharedMlaShape("mla_mha_bias_shape", [_mlaRowCount, _g.Int64s(1, -1), _mlaKeys])]);
            _mlaShapes.Add("mla_mha_bias_" + headsText, bias);
        }

        // The query comes scaled (LatentAttentionInputs), so the op's scale is 1.
        var attended = _g.NodeMulti(
            "MultiHeadAttention",
            n + "mla_mha",
            [padded, keys, latents, string.Empty, string.Empty, bias],
            [n + "mla_mha_out"],
            [Attr("num_heads", 1L), Attr("scale", 1f)],
            PagedAttentionDomain)[0];
        var perPlace = _g.Node("Reshape", n + "mla_place_outputs", [attended, _g.Int64s(-1, heads * rank)]);
        return _g.Node("Gather", n + "mla_token_outputs", [perPlace, _mlaTokenRows], Attr("axis", 0L));
    }

    /// <summary>
    /// A shape made of the prologue's host values (<paramref name="parts"/> concatenated), once per graph under
    /// <paramref name="name"/>: the layers share it (a step run eagerly dispatches every node).
    /// </summary>
    private string SharedMlaShape(string name, string[] parts)
    {
        if (!_mlaShapes.TryGetValue(name, out var shape))
        {
            shape = _g.Node("Concat", name, parts, Attr("axis", 0L));
            _mlaShapes.Add(name, shape);
        }

        return shape;
    }
}
