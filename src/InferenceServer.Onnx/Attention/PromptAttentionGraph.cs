// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Onnx.Proto;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// The graph of <see cref="PromptAttention"/> (ADR 0005, "Prompt attention on the compute device"): causal attention of
/// one prompt chunk that starts at position 0 over itself, one <c>com.microsoft.GroupQueryAttention</c> in prompt mode
/// (an empty past; flash attention on CUDA, the CPU provider's kernel in the tests). q, k and v arrive as the split
/// segments hand them over, [S, heads x d] with RoPE applied, so the node does no rotary; seqlens_k and
/// total_sequence_length come from the chunk's length inside the graph. A Mixture-of-Head layer multiplies the output by
/// the segment's head mask, as <see cref="PagedAttentionGraph"/> does. Made in memory once per distinct layer shape.
/// </summary>
internal static class PromptAttentionGraph
{
    /// <summary>Input: the chunk's queries [S, heads x d].</summary>
    public const string Query = PagedAttentionGraph.Query;

    /// <summary>Input: the chunk's keys [S, kv_heads x d].</summary>
    public const string Key = PagedAttentionGraph.Key;

    /// <summary>Input: the chunk's values [S, kv_heads x d].</summary>
    public const string Value = PagedAttentionGraph.Value;

    /// <summary>Input of MoH layers: fp32 [S, heads], 1 for a head the token uses.</summary>
    public const string HeadMask = PagedAttentionGraph.HeadMask;

    /// <summary>Output: [S, heads x d].</summary>
    public const string Output = PagedAttentionGraph.Output;

    /// <summary>Whether a layer's attention is what GroupQueryAttention computes: one width for q, k and v heads (not MLA's latent).</summary>
    public static bool Supports(AttentionLayerSpec spec) =>
        spec.Kind is AttentionKind.Gqa or AttentionKind.Moh && spec.KeyWidth == spec.ValueWidth;

    /// <summary>The serialized model for <paramref name="spec"/>'s shape in <paramref name="type"/> (float, float16 or bfloat16).</summary>
    /// <exception cref="ArgumentException">A layer <see cref="Supports"/> refuses.</exception>
    public static byte[] Create(AttentionLayerSpec spec, TensorElementType type)
    {
        if (!Supports(spec))
        {
            throw new ArgumentException($"Layer {spec.Layer} ({spec.Kind}) is not GroupQueryAttention's shape.", nameof(spec));
        }

        var t = PagedAttentionGraph.ElementType(type);
        var heads = spec.QueryHeads;
        var kvHeads = spec.KvHeads;
        var d = spec.KeyWidth;
        var graph = new GraphProto { Name = "prompt_attention" };
        graph.Input.Add(PagedAttentionGraph.Info(Query, t, "num_tokens", heads * d));
        graph.Input.Add(PagedAttentionGraph.Info(Key, t, "num_tokens", kvHeads * d));
        graph.Input.Add(PagedAttentionGraph.Info(Value, t, "num_tokens", kvHeads * d));
        graph.Initializer.Add(PagedAttentionGraph.Int64s("q_shape", 1, -1, heads * d));
        graph.Initializer.Add(PagedAttentionGraph.Int64s("kv_shape", 1, -1, kvHeads * d));
        graph.Initializer.Add(PagedAttentionGraph.Int64s("rows_shape", -1, heads * d));
        graph.Initializer.Add(PagedAttentionGraph.Int64Scalar("zero", 0));
        graph.Initializer.Add(PagedAttentionGraph.Int64Scalar("one", 1));
        graph.Initializer.Add(PagedAttentionGraph.Int64s("axis0", 0));
        // The empty past, [1, kv_heads, 0, d]: prompt mode, present = the chunk's own keys and values.
        foreach (var name in (string[])["past_key", "past_value"])
        {
            var past = new TensorProto { Name = name, DataType = (int)t };
            past.Dims.AddRange([1, kvHeads, 0, d]);
            graph.Initializer.Add(past);
        }

        graph.Node.Add(PagedAttentionGraph.Node("Reshape", "q_3d", [Query, "q_shape"]));
        graph.Node.Add(PagedAttentionGraph.Node("Reshape", "k_3d", [Key, "kv_shape"]));
        graph.Node.Add(PagedAttentionGraph.Node("Reshape", "v_3d", [Value, "kv_shape"]));
        graph.Node.Add(PagedAttentionGraph.Node("Shape", "key_shape", [Key]));
        var length = PagedAttentionGraph.Node("Gather", "length", ["key_shape", "zero"]);
        length.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 0 });
        graph.Node.Add(length);
        graph.Node.Add(PagedAttentionGraph.Cast("total_sequence_length", "length", TensorProto.Types.DataType.Int32));
        graph.Node.Add(PagedAttentionGraph.Node("Sub", "last_index", ["length", "one"]));
        graph.Node.Add(PagedAttentionGraph.Node("Unsqueeze", "last_index_1d", ["last_index", "axis0"]));
        graph.Node.Add(PagedAttentionGraph.Cast("seqlens_k", "last_index_1d", TensorProto.Types.DataType.Int32));
        graph.Node.Add(PagedAttentionGraph.AttentionNode(
            "GroupQueryAttention",
            spec,
            ["q_3d", "k_3d", "v_3d", "past_key", "past_value", "seqlens_k", "total_sequence_length"],
            ["attention_3d", "present_key", "present_value"]));
        if (spec.HeadMasked)
        {
            PagedAttentionGraph.MaskHeads(graph, "attention_3d", t, heads, d);
        }
        else
        {
            graph.Node.Add(PagedAttentionGraph.Node("Reshape", Output, ["attention_3d", "rows_shape"]));
        }

        graph.Output.Add(PagedAttentionGraph.Info(Output, t, "num_tokens", heads * d));
        return PagedAttentionGraph.Serialize(graph);
    }
}
