// Licensed under the MIT License. See LICENSE in the repository root.
using Google.Protobuf;
using InferenceServer.Builder.Onnx.Proto;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// The attention graph of a <c>cuda:N</c> attention device that shares a model's KV with other memory devices (ADR 0005):
/// standard ONNX ops only, so it returns what PagedAttention does not, the log-sum-exp per row and head, and attends over
/// any subset of a row's blocks (the ones this device holds). Per call:
/// <list type="number">
/// <item>append: the step's k and v rows named by <see cref="AppendRows"/> go to their pool slots
/// (<see cref="AppendSlots"/>, [local block, offset] pairs) by <c>ScatterND</c> into the pools, which are bound as both
/// input and output (in place: ONNX Runtime's ScatterND skips its copy when the two are one buffer);</item>
/// <item>attend: each query row gathers its blocks here (<see cref="RowBlocks"/>, [rows, blocks]) from the updated pools,
/// and with <see cref="KeyBias"/> (0 for a key the row sees, -1e30 for one it does not: past its position, or padding)
/// computes in fp32 the scores, their max and log-sum-exp, the softmax and its weighted sum of the values.</item>
/// </list>
/// Outputs <see cref="Output"/> [rows, heads x value_width] in the model's dtype and <see cref="Lse"/> fp32 [rows, heads];
/// a row that sees nothing here gets an lse near -1e30, which the merge weighs at exactly 0. A Mixture-of-Head layer's
/// output is multiplied by its head mask. A latent (MLA) layer, whose value is its key's first value_width entries, has
/// no value input or pool: the values are sliced from the gathered keys. Runs on ONNX Runtime's CPU provider as well (the unit tests check it there).
/// </summary>
internal static class LseAttentionGraph
{
    /// <summary>Input: the query rows of this call [rows, heads x key_width].</summary>
    public const string Query = "query";

    /// <summary>Input: all of the step's key rows [T, kv_heads x key_width].</summary>
    public const string Key = "key";

    /// <summary>Input: all of the step's value rows [T, kv_heads x value_width].</summary>
    public const string Value = "value";

    /// <summary>Input: the key pool [blocks, block_size, kv_heads, key_width] (aliased to <see cref="KeyCacheOut"/>).</summary>
    public const string KeyCache = "key_cache";

    /// <summary>Input: the value pool (aliased to <see cref="ValueCacheOut"/>).</summary>
    public const string ValueCache = "value_cache";

    /// <summary>Input: int64 [A], the step rows whose k and v are stored here.</summary>
    public const string AppendRows = "append_rows";

    /// <summary>Input: int64 [A, 2], their (local block, offset) slots.</summary>
    public const string AppendSlots = "append_slots";

    /// <summary>Input: int64 [rows, blocks], each query row's local blocks (padding: any valid block, masked by the bias).</summary>
    public const string RowBlocks = "row_blocks";

    /// <summary>Input: fp32 [rows, blocks x block_size], 0 for a key the row attends to, -1e30 for one it does not.</summary>
    public const string KeyBias = "key_bias";

    /// <summary>Input of MoH layers: fp32 [rows, heads], 1 for a head the token uses.</summary>
    public const string HeadMask = "head_mask";

    /// <summary>Output: [rows, heads x value_width].</summary>
    public const string Output = "output";

    /// <summary>Output: fp32 [rows, heads], the log-sum-exp of each row's scaled scores here.</summary>
    public const string Lse = "lse";

    /// <summary>Output: the updated key pool.</summary>
    public const string KeyCacheOut = "key_cache_out";

    /// <summary>Output: the updated value pool.</summary>
    public const string ValueCacheOut = "value_cache_out";

    /// <summary>The bias of a key a row does not see: finite, so that a row seeing nothing here stays NaN-free.</summary>
    public const float Masked = -1e30f;

    /// <summary>The serialized model for <paramref name="spec"/>'s shape with KV and q/k/v in <paramref name="type"/> (float, float16 or bfloat16).</summary>
    public static byte[] Create(AttentionLayerSpec spec, TensorElementType type)
    {
        var t = PagedAttentionGraph.ElementType(type);
        var f = TensorProto.Types.DataType.Float;
        var i64 = TensorProto.Types.DataType.Int64;
        var heads = spec.QueryHeads;
        var kvHeads = spec.KvHeads;
        var group = heads / kvHeads;
        var dk = spec.KeyWidth;
        var dv = spec.ValueWidth;
        var g = new Graph();
        g.Input(Query, t, "rows", heads * dk);
        g.Input(Key, t, "num_tokens", kvHeads * dk);
        var latent = spec.ValueIsKeyPrefix;
        if (!latent)
        {
            g.Input(Value, t, "num_tokens", kvHeads * dv);
        }

        g.Input(KeyCache, t, "num_blocks", "block_size", kvHeads, dk);
        if (!latent)
        {
            g.Input(ValueCache, t, "num_blocks", "block_size", kvHeads, dv);
        }

        g.Input(AppendRows, i64, "appended");
        g.Input(AppendSlots, i64, "appended", 2);
        g.Input(RowBlocks, i64, "rows", "row_blocks");
        g.Input(KeyBias, f, "rows", "keys");

        // 1. Append: the rows stored here, scattered into their slots in place.
        var keyRows = g.Node("Gather", "key_appended", g.Node("Reshape", "key_heads", Key, g.Int64s(-1, kvHeads, dk)), AppendRows);
        g.NodeTo("ScatterND", KeyCacheOut, KeyCache, AppendSlots, keyRows);
        if (!latent)
        {
            var valueRows = g.Node("Gather", "value_appended", g.Node("Reshape", "value_heads", Value, g.Int64s(-1, kvHeads, dv)), AppendRows);
            g.NodeTo("ScatterND", ValueCacheOut, ValueCache, AppendSlots, valueRows);
        }

        // 2. Scores over each row's blocks here: q [rows, kv, G, dk] x K^T [rows, kv, dk, L], scaled, biased.
        var keys = g.Node("Reshape", "keys_rows", g.Node("Gather", "keys_gathered", KeyCacheOut, RowBlocks), g.Int64s(0, -1, kvHeads, dk));
        var keysT = g.Node("Transpose", "keys_t", g.Float(keys, t), perm: [0, 2, 3, 1]);
        var q = g.Node("Reshape", "query_groups", g.Float(Query, t), g.Int64s(0, kvHeads, group, dk));
        var scores = g.Node("Mul", "scores_scaled", g.Node("MatMul", "scores", q, keysT), g.FloatScalar(spec.Scale));
        var biased = g.Node("Add", "scores_biased", scores, g.Node("Reshape", "bias_4d", KeyBias, g.Int64s(0, 1, 1, -1)));

        // 3. Softmax with its log-sum-exp, in fp32.
        var last = g.Int64s(-1);
        var max = g.Node("ReduceMax", "scores_max", biased, last, keepdims: true);
        var exp = g.Node("Exp", "scores_exp", g.Node("Sub", "scores_shifted", biased, max));
        var sum = g.Node("ReduceSum", "scores_sum", exp, last, keepdims: true);
        var lse = g.Node("Add", "lse_4d", max, g.Node("Log", "sum_log", sum));
        g.NodeTo("Reshape", Lse, lse, g.Int64s(0, heads));
        var weights = g.Node("Div", "weights", exp, sum);

        // 4. The weighted values: [rows, kv, G, L] x [rows, kv, L, dv] -> [rows, heads x dv].
        var values = latent
            ? g.Node("Slice", "values_rows", keys, g.Int64s(0), g.Int64s(dv), g.Int64s(3))
            : g.Node("Reshape", "values_rows", g.Node("Gather", "values_gathered", ValueCacheOut, RowBlocks), g.Int64s(0, -1, kvHeads, dv));
        var valuesT = g.Node("Transpose", "values_t", g.Float(values, t), perm: [0, 2, 1, 3]);
        var output = g.Node("Reshape", "output_rows", g.Node("MatMul", "output_groups", weights, valuesT), g.Int64s(0, heads * dv));
        if (spec.HeadMasked)
        {
            g.Input(HeadMask, f, "rows", heads);
            var perHead = g.Node("Reshape", "output_heads", output, g.Int64s(0, heads, dv));
            var mask = g.Node("Unsqueeze", "mask_3d", HeadMask, g.Int64s(2));
            output = g.Node("Reshape", "output_masked", g.Node("Mul", "output_heads_masked", perHead, mask), g.Int64s(0, heads * dv));
        }

        if (t == f)
        {
            g.NodeTo("Identity", Output, output);
        }
        else
        {
            g.NodeTo("Cast", Output, [output], ("to", (long)t));
        }

        g.Output(Output, t, "rows", heads * dv);
        g.Output(Lse, f, "rows", heads);
        g.Output(KeyCacheOut, t, "num_blocks", "block_size", kvHeads, dk);
        if (!latent)
        {
            g.Output(ValueCacheOut, t, "num_blocks", "block_size", kvHeads, dv);
        }

        return g.Serialize();
    }

    /// <summary>A small graph writer for this file: named nodes, int64/float constants, opset 23.</summary>
    private sealed class Graph
    {
        private readonly GraphProto _graph = new() { Name = "lse_attention" };
        private int _constants;

        public void Input(string name, TensorProto.Types.DataType type, params object[] dims) => _graph.Input.Add(PagedAttentionGraph.Info(name, type, dims));

        public void Output(string name, TensorProto.Types.DataType type, params object[] dims) => _graph.Output.Add(PagedAttentionGraph.Info(name, type, dims));

        public string Node(string opType, string name, params string[] inputs) => NodeTo(opType, name, inputs, []);

        public string Node(string opType, string name, string input, string axes, bool keepdims) =>
            NodeTo(opType, name, [input, axes], ("keepdims", keepdims ? 1L : 0L));

        public string Node(string opType, string name, string input, long[] perm)
        {
            var node = new NodeProto { OpType = opType, Name = name };
            node.Input.Add(input);
            node.Output.Add(name);
            var attribute = new AttributeProto { Name = "perm", Type = AttributeProto.Types.AttributeType.Ints };
            attribute.Ints.AddRange(perm);
            node.Attribute.Add(attribute);
            _graph.Node.Add(node);
            return name;
        }

        public string NodeTo(string opType, string output, params string[] inputs) => NodeTo(opType, output, inputs, []);

        public string NodeTo(string opType, string output, string[] inputs, params (string Name, long Value)[] attributes)
        {
            var node = new NodeProto { OpType = opType, Name = output };
            node.Input.AddRange(inputs);
            node.Output.Add(output);
            foreach (var (name, value) in attributes)
            {
                node.Attribute.Add(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value });
            }

            _graph.Node.Add(node);
            return output;
        }

        /// <summary><paramref name="x"/> as fp32 (itself when <paramref name="type"/> is float).</summary>
        public string Float(string x, TensorProto.Types.DataType type) =>
            type == TensorProto.Types.DataType.Float ? x : NodeTo("Cast", x + "_f32", [x], ("to", (long)TensorProto.Types.DataType.Float));

        public string Int64s(params long[] values)
        {
            var tensor = new TensorProto { Name = "const_" + _constants++, DataType = (int)TensorProto.Types.DataType.Int64 };
            tensor.Dims.Add(values.Length);
            tensor.Int64Data.AddRange(values);
            _graph.Initializer.Add(tensor);
            return tensor.Name;
        }

        public string FloatScalar(float value)
        {
            var tensor = new TensorProto { Name = "const_" + _constants++, DataType = (int)TensorProto.Types.DataType.Float };
            tensor.FloatData.Add(value);
            _graph.Initializer.Add(tensor);
            return tensor.Name;
        }

        public byte[] Serialize()
        {
            var model = new ModelProto { IrVersion = 11, ProducerName = "InferenceServer", Graph = _graph };
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = string.Empty, Version = 23 });
            return model.ToByteArray();
        }
    }
}
