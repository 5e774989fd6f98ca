// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using InferenceServer.Builder.Onnx.Proto;

namespace InferenceServer.Builder.Inspection;

/// <summary>
/// Reads a decoder graph's protobuf (not its weights) and reports its KV layout, fused attention nodes, parameter
/// count and ops: the <c>inspect</c> command's data. Works on built graphs and on Optimum exports alike.
/// </summary>
internal static class ModelInspector
{
    private static readonly HashSet<string> AttentionOps = new(StringComparer.Ordinal)
    {
        "ai.onnx.Attention", "com.microsoft.GroupQueryAttention", "com.microsoft.MultiHeadAttention", "com.microsoft.Attention",
        ModelBuilder.PagedAttentionOp,
    };

    /// <summary>Inspects <paramref name="path"/>: a <c>model.onnx</c> file, or a model folder holding one.</summary>
    /// <exception cref="ModelBuildException">No graph there, or it is not a valid ONNX model.</exception>
    public static ModelInspection Inspect(string path)
    {
        var file = Directory.Exists(path) ? Path.Combine(path, ModelBuilder.GraphFileName) : path;
        if (!File.Exists(file))
        {
            throw new ModelBuildException($"{Path.GetFullPath(file)}: no ONNX graph there");
        }

        ModelProto model;
        try
        {
            using var stream = File.OpenRead(file);
            model = ModelProto.Parser.ParseFrom(stream);
        }
        catch (Google.Protobuf.InvalidProtocolBufferException ex)
        {
            throw new ModelBuildException($"{Path.GetFullPath(file)}: not a valid ONNX model ({ex.Message})", ex);
        }

        if (model.Graph is null)
        {
            throw new ModelBuildException($"{Path.GetFullPath(file)}: the model has no graph");
        }

        var graph = model.Graph;
        var inputs = graph.Input.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var metadata = model.MetadataProps.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
        var paged = inputs.ContainsKey("key_cache.0");
        var (keyFormat, valueFormat, headsAxis) = paged ? ("key_cache.{0}", "value_cache.{0}", 2) : ("past_key_values.{0}.key", "past_key_values.{0}.value", 1);
        var kv = new List<KvInputInfo>();
        for (var i = 0;
            inputs.TryGetValue(string.Format(CultureInfo.InvariantCulture, keyFormat, i), out var key)
            && inputs.TryGetValue(string.Format(CultureInfo.InvariantCulture, valueFormat, i), out var value);
            i++)
        {
            var (keyHeads, keyWidth, keyBytes) = KvDims(key, headsAxis);
            var (valueHeads, valueWidth, _) = KvDims(value, headsAxis);
            kv.Add(new KvInputInfo(i, keyHeads, keyWidth, valueHeads, valueWidth, keyBytes));
        }

        var ops = new Dictionary<string, int>(StringComparer.Ordinal);
        var attention = new List<AttentionNodeInfo>();
        foreach (var node in graph.Node)
        {
            var op = Qualified(node.Domain, node.OpType);
            ops[op] = ops.GetValueOrDefault(op) + 1;
            if (AttentionOps.Contains(op))
            {
                attention.Add(new AttentionNodeInfo(
                    node.Name,
                    op,
                    IntAttribute(node, "q_num_heads") ?? IntAttribute(node, "num_heads") ?? 0,
                    IntAttribute(node, "kv_num_heads") ?? 0,
                    PastKeyInput(op, node),
                    node.Output.Count > 1 ? node.Output[1] : string.Empty));
            }
        }

        long parameters = 0;
        long external = 0;
        foreach (var tensor in graph.Initializer)
        {
            long count = 1;
            foreach (var d in tensor.Dims)
            {
                count *= d;
            }

            parameters += count;
            if (tensor.DataLocation == TensorProto.Types.DataLocation.External)
            {
                foreach (var entry in tensor.ExternalData)
                {
                    if (entry.Key == "length")
                    {
                        external += long.Parse(entry.Value, CultureInfo.InvariantCulture);
                    }
                }
            }
        }

        return new ModelInspection
        {
            Path = Path.GetFullPath(file),
            Graph = metadata.GetValueOrDefault(ModelBuilder.GraphMetadataKey) ?? (paged ? ModelBuilder.PagedGraph : ModelBuilder.DenseGraph),
            DType = metadata.GetValueOrDefault(ModelBuilder.DTypeMetadataKey) ?? (kv.Count > 0 && kv[0].ElementBytes == 2 ? "fp16 or bf16" : "fp32"),
            IrVersion = model.IrVersion,
            Opsets = model.OpsetImport.Select(o => $"{(o.Domain.Length == 0 ? "ai.onnx" : o.Domain)}:{o.Version}").ToList(),
            KvInputs = kv,
            AttentionNodes = attention,
            ParameterCount = parameters,
            ExternalDataBytes = external,
            Ops = ops.OrderByDescending(p => p.Value).ThenBy(p => p.Key, StringComparer.Ordinal).ToList(),
        };
    }

    private static string Qualified(string domain, string opType) => (domain.Length == 0 ? "ai.onnx" : domain) + "." + opType;

    private static string PastKeyInput(string op, NodeProto node)
    {
        var index = op switch
        {
            "ai.onnx.Attention" => 4,
            "com.microsoft.GroupQueryAttention" => 3,
            "com.microsoft.MultiHeadAttention" => 6,
            ModelBuilder.PagedAttentionOp => 3,
            _ => -1,
        };
        return index >= 0 && index < node.Input.Count ? node.Input[index] : string.Empty;
    }

    private static long? IntAttribute(NodeProto node, string name)
    {
        foreach (var attribute in node.Attribute)
        {
            if (attribute.Name == name)
            {
                return attribute.I;
            }
        }

        return null;
    }

    /// <summary>Heads (at <paramref name="headsAxis"/>: 1 for [batch, heads, past, width], 2 for paged [blocks, block_size, heads, width]), width, element bytes.</summary>
    private static (long Heads, long Width, int ElementBytes) KvDims(ValueInfoProto input, int headsAxis)
    {
        var tensor = input.Type?.TensorType;
        var dims = tensor?.Shape?.Dim;
        if (tensor is null || dims is null || dims.Count != 4)
        {
            throw new ModelBuildException(headsAxis == 1
                ? $"graph input '{input.Name}' is not a 4-D tensor [batch, heads, past, width]"
                : $"graph input '{input.Name}' is not a 4-D tensor [num_blocks, block_size, heads, width]");
        }

        var bytes = (TensorProto.Types.DataType)tensor.ElemType switch
        {
            TensorProto.Types.DataType.Float => 4,
            TensorProto.Types.DataType.Float16 or TensorProto.Types.DataType.Bfloat16 => 2,
            var other => throw new ModelBuildException($"graph input '{input.Name}' has element type {other}"),
        };
        return (dims[headsAxis].DimValue, dims[3].DimValue, bytes);
    }
}
