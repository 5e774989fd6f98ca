// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Onnx.Proto;
using static InferenceServer.Builder.Graph.OnnxGraphWriter;

namespace InferenceServer.Builder.Graph;

/// <summary>
/// The onnxruntime-genai I/O contract (<c>build --graph genai</c>, ADR 0006, <c>inferenceserver.graph = genai-v1</c>):
/// the dense graph's inputs and outputs (<c>input_ids</c>, <c>attention_mask</c>, <c>past_key_values.{i}.key|value</c>
/// [batch, kv_heads, past, head_dim]; <c>logits</c>, <c>present.{i}.key|value</c>), no <c>position_ids</c>, and per layer
/// one <c>com.microsoft.GroupQueryAttention</c> with rotary fused in (<c>do_rotary = 1</c>, the cos/sin tables as
/// initializers), fed <c>seqlens_k</c> = sum(attention_mask) - 1 per row (int32) and <c>total_sequence_length</c> = the
/// mask's width (int32 scalar), computed in the graph from <c>attention_mask</c> as the GenAI builder does. GQA keeps
/// each row contiguous: row b's past is <c>[0, seqlens_k[b] + 1 - S)</c>, its new tokens' KV lands right after it in
/// <c>present</c>, so the mask must be a right-padded run of ones (no holes), as GenAI feeds it.
/// </summary>
internal sealed partial class DecoderGraphBuilder
{
    /// <summary>The GenAI-contract attention op type (domain <see cref="PagedAttentionDomain"/>, com.microsoft).</summary>
    public const string GroupQueryAttentionOpType = "GroupQueryAttention";

    /// <summary>The <c>inferenceserver.graph</c> metadata value of the GenAI-contract graph.</summary>
    public const string GenAiGraph = "genai-v1";

    // Set by BuildGenAi: attention is GroupQueryAttention; _cos/_sin hold the whole tables.
    private bool _genAi;
    private string _seqlensK = string.Empty;
    private string _totalSequenceLength = string.Empty;

    /// <summary>Emits the GenAI-contract graph; checks for cancellation per layer.</summary>
    /// <exception cref="ModelBuildException">An MLA, MoH or partial-rotary checkpoint, which GroupQueryAttention does not express.</exception>
    public void BuildGenAi(CancellationToken cancellationToken)
    {
        var c = _config;
        if (c.Mla is not null || c.Moh is not null || RotaryDim != c.HeadDim)
        {
            var kind = c.Mla is not null ? "MLA (multi-head latent attention)" : c.Moh is not null ? "MoH (mixture-of-head attention)" : "partial rotary";
            throw new ModelBuildException($"{c.ModelType}: {kind} checkpoints are not built for --graph genai (GroupQueryAttention); build without --graph genai");
        }

        _genAi = true;
        Build(cancellationToken);
    }

    /// <summary>The GenAI graph's prologue: seqlens_k and total_sequence_length from the mask, and the whole cos/sin tables.</summary>
    private void GenAiPrologue()
    {
        _idsShape = _g.Node("Shape", "ids_shape", ["input_ids"]);
        var lengths = _g.Node("ReduceSum", "mask_lengths", ["attention_mask", _g.Int64s(1)], Attr("keepdims", 0L));
        var lastIndex = _g.Node("Sub", "mask_last_index", [lengths, _g.Int64Scalar(1)]);
        _seqlensK = _g.Node("Cast", "seqlens_k", [lastIndex], Attr("to", (long)TensorProto.Types.DataType.Int32));
        var maskShape = _g.Node("Shape", "mask_shape", ["attention_mask"]);
        var total = _g.Node("Gather", "total_length", [maskShape, _g.Int64Scalar(1)], Attr("axis", 0L));
        _totalSequenceLength = _g.Node("Cast", "total_sequence_length", [total], Attr("to", (long)TensorProto.Types.DataType.Int32));
        (_cos, _sin) = RopeCaches();
    }

    /// <summary>Layer <paramref name="layer"/>'s GroupQueryAttention over projections [B x S, width]: [B x S, heads x d].</summary>
    private string GroupQueryAttentionCore(int layer, int kvIndex, string q, string k, string v)
    {
        var (p, n, heads, kvHeads, d) = LayerShape(layer);
        var q3 = GenAiHeads(n + "q", q, heads, p + "self_attn.q_norm.weight");
        var k3 = GenAiHeads(n + "k", k, kvHeads, p + "self_attn.k_norm.weight");
        var v3 = _g.Node("Reshape", n + "v_3d", [v, Shape3(kvHeads * d)]);
        var outputs = _g.NodeMulti(
            GroupQueryAttentionOpType,
            n + "attention",
            [q3, k3, v3, $"past_key_values.{kvIndex}.key", $"past_key_values.{kvIndex}.value", _seqlensK, _totalSequenceLength, _cos, _sin],
            [n + "attention", $"present.{kvIndex}.key", $"present.{kvIndex}.value"],
            [
                Attr("num_heads", (long)heads), Attr("kv_num_heads", (long)kvHeads), Attr("scale", (float)(1.0 / Math.Sqrt(d))),
                Attr("do_rotary", 1L), Attr("rotary_interleaved", 0L),
            ],
            PagedAttentionDomain);
        return _g.Node("Reshape", n + "attention_2d", [outputs[0], _g.Int64s(-1, heads * d)]);
    }

    /// <summary>A projection as [B, S, heads x d], through the per-head RMSNorm (Qwen3) when the checkpoint has one.</summary>
    private string GenAiHeads(string prefix, string projection, int headCount, string normWeight) =>
        HasHeadNorm(normWeight)
            ? _g.Node("Reshape", prefix + "_3d", [Heads(prefix, projection, headCount, normWeight), Shape3(headCount * _config.HeadDim)])
            : _g.Node("Reshape", prefix + "_3d", [projection, Shape3(headCount * _config.HeadDim)]);
}
