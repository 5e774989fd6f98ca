// Licensed under the MIT License. See LICENSE in the repository root.
using Google.Protobuf;
using InferenceServer.Builder.Onnx.Proto;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// The one-node attention graph of the <c>cuda:N</c> attention backend (ADR 0005): one <c>com.microsoft.PagedAttention</c>
/// over packed rows, exactly as the fused paged graph calls it (ADR 0003: the same inputs in the same slots, block pools
/// updated in place through aliased outputs, the host-side <c>attention_metadata</c> bounds), but without rotary, since
/// the split segments hand over q and k with RoPE applied. A Mixture-of-Head layer multiplies the output by the
/// segment's head mask, as the fused graph does. Made in memory once per distinct layer shape.
/// </summary>
internal static class PagedAttentionGraph
{
    /// <summary>Input: the packed queries [T, heads x d].</summary>
    public const string Query = "query";

    /// <summary>Input: the packed keys [T, kv_heads x d].</summary>
    public const string Key = "key";

    /// <summary>Input: the packed values [T, kv_heads x d].</summary>
    public const string Value = "value";

    /// <summary>Input: the key pool [blocks, block_size, kv_heads, d] (aliased to <see cref="KeyCacheOut"/>).</summary>
    public const string KeyCache = "key_cache";

    /// <summary>Input: the value pool (aliased to <see cref="ValueCacheOut"/>).</summary>
    public const string ValueCache = "value_cache";

    /// <summary>Input: int32 [rows + 1], the rows' token offsets.</summary>
    public const string CumulativeSequenceLength = "cumulative_sequence_length";

    /// <summary>Input: int32 [rows], tokens cached before this step.</summary>
    public const string PastSequenceLengths = "past_seqlens";

    /// <summary>Input: int32 [rows, max_blocks].</summary>
    public const string BlockTable = "block_table";

    /// <summary>Input: int32 [2] on the host, the step's most new tokens in a row and its longest row.</summary>
    public const string AttentionMetadata = "attention_metadata";

    /// <summary>Input of MoH layers: fp32 [T, heads], 1 for a head the token uses.</summary>
    public const string HeadMask = "head_mask";

    /// <summary>Output: [T, heads x d].</summary>
    public const string Output = "output";

    /// <summary>Output: the updated key pool.</summary>
    public const string KeyCacheOut = "key_cache_out";

    /// <summary>Output: the updated value pool.</summary>
    public const string ValueCacheOut = "value_cache_out";

    /// <summary>
    /// The serialized model for <paramref name="spec"/>'s shape in <paramref name="type"/> (float16 or bfloat16); for a
    /// latent (MLA) layer, <see cref="CreateLatent"/>'s.
    /// </summary>
    public static byte[] Create(AttentionLayerSpec spec, TensorElementType type)
    {
        if (spec.ValueIsKeyPrefix)
        {
            return CreateLatent(spec, type);
        }

        var t = type == TensorElementType.BFloat16 ? TensorProto.Types.DataType.Bfloat16 : TensorProto.Types.DataType.Float16;
        var heads = spec.QueryHeads;
        var kvHeads = spec.KvHeads;
        var d = spec.KeyWidth;
        var graph = new GraphProto { Name = "paged_attention" };
        graph.Input.Add(Info(Query, t, "num_tokens", heads * d));
        graph.Input.Add(Info(Key, t, "num_tokens", kvHeads * d));
        graph.Input.Add(Info(Value, t, "num_tokens", kvHeads * spec.ValueWidth));
        graph.Input.Add(Info(KeyCache, t, "num_blocks", "block_size", kvHeads, d));
        graph.Input.Add(Info(ValueCache, t, "num_blocks", "block_size", kvHeads, spec.ValueWidth));
        graph.Input.Add(Info(CumulativeSequenceLength, TensorProto.Types.DataType.Int32, "batch_size_plus_1"));
        graph.Input.Add(Info(PastSequenceLengths, TensorProto.Types.DataType.Int32, "batch_size"));
        graph.Input.Add(Info(BlockTable, TensorProto.Types.DataType.Int32, "batch_size", "max_blocks"));
        graph.Input.Add(Info(AttentionMetadata, TensorProto.Types.DataType.Int32, 2));
        var attention = spec.HeadMasked ? "attention_raw" : Output;
        // Slots 8 and 9 (cos/sin caches) and 10..15 stay empty; the bounds are input 16, as in the fused graph.
        graph.Node.Add(AttentionNode(
            "PagedAttention",
            spec,
            [Query, Key, Value, KeyCache, ValueCache, CumulativeSequenceLength, PastSequenceLengths, BlockTable,
                string.Empty, string.Empty, string.Empty, string.Empty, string.Empty, string.Empty, string.Empty, string.Empty, AttentionMetadata],
            [attention, KeyCacheOut, ValueCacheOut]));
        if (spec.HeadMasked)
        {
            graph.Initializer.Add(Int64s("rows_shape", -1, heads * spec.ValueWidth));
            MaskHeads(graph, attention, t, heads, spec.ValueWidth);
        }

        graph.Output.Add(Info(Output, t, "num_tokens", heads * spec.ValueWidth));
        graph.Output.Add(Info(KeyCacheOut, t, "num_blocks", "block_size", kvHeads, d));
        graph.Output.Add(Info(ValueCacheOut, t, "num_blocks", "block_size", kvHeads, spec.ValueWidth));
        return Serialize(graph);
    }

    /// <summary>
    /// The one-node graph of a latent (MLA) layer: ONNX Runtime 1.31's <c>PagedAttention</c> with
    /// <c>kv_cache_layout = "LATENT"</c>, the absorbed form of multi-head latent attention. One pool per layer,
    /// [blocks, block_size, 1, kv_lora_rank + rope] (the key is the normalized latent and the roped shared key side by
    /// side); the value of every head is the key's first <c>v_head_size</c> (kv_lora_rank) channels, so there is no
    /// value input or pool, and the output is [T, heads x kv_lora_rank]. The scale is explicit (the op refuses to default
    /// it when the value is narrower than the key). On an H100 (2026-12-08, <c>LatentPagedAttentionTests</c>) it matches
    /// the CPU kernel and takes ~12x the GQA 1B layer's time at 256 decode rows, so the split still attends MLA layers on a
    /// GPU with <see cref="LseAttentionGraph"/>.
    /// </summary>
    public static byte[] CreateLatent(AttentionLayerSpec spec, TensorElementType type)
    {
        if (!spec.ValueIsKeyPrefix || spec.KvHeads != 1)
        {
            throw new ArgumentException("The latent form takes an MLA layer: one KV head whose value is its key's prefix.", nameof(spec));
        }

        var t = type == TensorElementType.BFloat16 ? TensorProto.Types.DataType.Bfloat16 : TensorProto.Types.DataType.Float16;
        var heads = spec.QueryHeads;
        var d = spec.KeyWidth;
        var graph = new GraphProto { Name = "paged_latent_attention" };
        graph.Input.Add(Info(Query, t, "num_tokens", heads * d));
        graph.Input.Add(Info(Key, t, "num_tokens", d));
        graph.Input.Add(Info(KeyCache, t, "num_blocks", "block_size", 1, d));
        graph.Input.Add(Info(CumulativeSequenceLength, TensorProto.Types.DataType.Int32, "batch_size_plus_1"));
        graph.Input.Add(Info(PastSequenceLengths, TensorProto.Types.DataType.Int32, "batch_size"));
        graph.Input.Add(Info(BlockTable, TensorProto.Types.DataType.Int32, "batch_size", "max_blocks"));
        graph.Input.Add(Info(AttentionMetadata, TensorProto.Types.DataType.Int32, 2));
        // Slot 2 (value) and 4 (value_cache) stay empty, as LATENT requires; no value_cache_out.
        var node = AttentionNode(
            "PagedAttention",
            spec,
            [Query, Key, string.Empty, KeyCache, string.Empty, CumulativeSequenceLength, PastSequenceLengths, BlockTable,
                string.Empty, string.Empty, string.Empty, string.Empty, string.Empty, string.Empty, string.Empty, string.Empty, AttentionMetadata],
            [Output, KeyCacheOut]);
        node.Attribute.Add(new AttributeProto { Name = "kv_cache_layout", Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8("LATENT") });
        node.Attribute.Add(new AttributeProto { Name = "v_head_size", Type = AttributeProto.Types.AttributeType.Int, I = spec.ValueWidth });
        graph.Node.Add(node);
        graph.Output.Add(Info(Output, t, "num_tokens", heads * spec.ValueWidth));
        graph.Output.Add(Info(KeyCacheOut, t, "num_blocks", "block_size", 1, d));
        return Serialize(graph);
    }

    /// <summary>
    /// A <c>com.microsoft</c> attention node (<paramref name="opType"/>: PagedAttention, GroupQueryAttention) over q, k and v
    /// that arrive rotated: <paramref name="spec"/>'s heads, KV heads and scale, <c>do_rotary = 0</c>.
    /// </summary>
    internal static NodeProto AttentionNode(string opType, AttentionLayerSpec spec, string[] inputs, string[] outputs)
    {
        var node = new NodeProto { OpType = opType, Name = "attention", Domain = "com.microsoft" };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.Add(new AttributeProto { Name = "num_heads", Type = AttributeProto.Types.AttributeType.Int, I = spec.QueryHeads });
        node.Attribute.Add(new AttributeProto { Name = "kv_num_heads", Type = AttributeProto.Types.AttributeType.Int, I = spec.KvHeads });
        node.Attribute.Add(new AttributeProto { Name = "scale", Type = AttributeProto.Types.AttributeType.Float, F = spec.Scale });
        node.Attribute.Add(new AttributeProto { Name = "do_rotary", Type = AttributeProto.Types.AttributeType.Int, I = 0 });
        return node;
    }

    /// <summary>The model of <paramref name="graph"/> (opset 23 and <c>com.microsoft</c> 1), serialized.</summary>
    internal static byte[] Serialize(GraphProto graph)
    {
        var model = new ModelProto { IrVersion = 11, ProducerName = "InferenceServer", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = string.Empty, Version = 23 });
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "com.microsoft", Version = 1 });
        return model.ToByteArray();
    }

    /// <summary>
    /// An MoH layer's head mask applied as the fused graph does: <see cref="Output"/> = (<paramref name="attention"/>
    /// [T, heads, width] x the fp32 <see cref="HeadMask"/> input [T, heads, 1] cast to <paramref name="t"/>) as
    /// [T, heads x width], reshaped by the graph's <c>rows_shape</c> initializer (the caller's).
    /// </summary>
    internal static void MaskHeads(GraphProto graph, string attention, TensorProto.Types.DataType t, int heads, int width)
    {
        graph.Input.Add(Info(HeadMask, TensorProto.Types.DataType.Float, "num_tokens", heads));
        graph.Initializer.Add(Int64s("heads_shape", -1, heads, width));
        graph.Initializer.Add(Int64s("mask_axis", 2));
        graph.Node.Add(Node("Reshape", "attention_heads", [attention, "heads_shape"]));
        graph.Node.Add(Node("Unsqueeze", "mask_3d", [HeadMask, "mask_axis"]));
        graph.Node.Add(Cast("mask_t", "mask_3d", t));
        graph.Node.Add(Node("Mul", "attention_masked", ["attention_heads", "mask_t"]));
        var reshape = Node("Reshape", "attention_rows", ["attention_masked", "rows_shape"]);
        reshape.Output[0] = Output;
        graph.Node.Add(reshape);
    }

    /// <summary>The ONNX element type of an attention graph's q, k, v and KV in <paramref name="type"/> (float, float16 or bfloat16).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Any other type.</exception>
    internal static TensorProto.Types.DataType ElementType(TensorElementType type) => type switch
    {
        TensorElementType.BFloat16 => TensorProto.Types.DataType.Bfloat16,
        TensorElementType.Float16 => TensorProto.Types.DataType.Float16,
        TensorElementType.Float => TensorProto.Types.DataType.Float,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "The attention graph takes float, float16 or bfloat16."),
    };

    /// <summary>A node of <paramref name="opType"/> whose one output is named <paramref name="name"/>.</summary>
    internal static NodeProto Node(string opType, string name, string[] inputs)
    {
        var node = new NodeProto { OpType = opType, Name = name };
        node.Input.AddRange(inputs);
        node.Output.Add(name);
        return node;
    }

    /// <summary>A <c>Cast</c> of <paramref name="input"/> to <paramref name="to"/> whose output is named <paramref name="name"/>.</summary>
    internal static NodeProto Cast(string name, string input, TensorProto.Types.DataType to)
    {
        var node = Node("Cast", name, [input]);
        node.Attribute.Add(new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (long)to });
        return node;
    }

    /// <summary>An int64 scalar initializer (shape []).</summary>
    internal static TensorProto Int64Scalar(string name, long value)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        tensor.Int64Data.Add(value);
        return tensor;
    }

    /// <summary>An int64 initializer of shape [values].</summary>
    internal static TensorProto Int64s(string name, params long[] values)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        tensor.Dims.Add(values.Length);
        tensor.Int64Data.AddRange(values);
        return tensor;
    }

    /// <summary>A graph input or output named <paramref name="name"/> of <paramref name="type"/>, dims as numbers or symbols.</summary>
    internal static ValueInfoProto Info(string name, TensorProto.Types.DataType type, params object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var dim in dims)
        {
            shape.Dim.Add(dim is string symbol ? new TensorShapeProto.Types.Dimension { DimParam = symbol } : new TensorShapeProto.Types.Dimension { DimValue = (int)dim });
        }

        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }
}
