// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers.Binary;
using Google.Protobuf;
using InferenceServer.Builder.Onnx.Proto;
using InferenceServer.Onnx.Packaging;

namespace InferenceServer.Onnx.Graph;

/// <summary>
/// Rewrites a decoder graph at load time into one that computes the same values with less memory traffic (ADR 0004).
/// The rewrites target the Hugging Face exports (Optimum, <c>torch.onnx</c>) that the dense-past runner serves; graphs
/// that do not contain their patterns are left alone, and a graph is only ever changed where the pattern is proven
/// from its structure.
/// <list type="bullet">
/// <item><b>Grouped-query attention without the KV repeat.</b> Transformers' <c>repeat_kv</c> exports as
/// <c>Unsqueeze(axis 2) → Expand → Reshape</c> on each layer's key and value, copying the whole KV cache
/// <c>heads / kv_heads</c> times every step before the two attention MatMuls read it (a Transpose of the copy comes
/// first for the key). Each such MatMul becomes
/// <c>Reshape(A, [B, kv_heads, -1, X]) · KV → Reshape(…, [B, heads, S, -1])</c>: the query heads that share a KV head
/// are stacked along the row axis, so one MatMul per KV head reads the cache where it is. Same dot products, no copy.</item>
/// <item><b>Single-input Concats</b> (identity copies the exporter leaves, e.g. of layer 0's past key) are bypassed.</item>
/// <item>Nodes and initializers nothing reads any more are removed.</item>
/// </list>
/// Only the main graph is rewritten; nodes inside subgraphs (<c>If</c> branches of merged decoders) are kept as they are.
/// </summary>
public static class GraphRewriter
{
    private const string Prefix = "inferenceserver/rewrite/";

    /// <summary>Reads the graph at <paramref name="path"/> and rewrites it; null when no rewrite applies.</summary>
    /// <remarks>Rewriting a rewritten graph finds nothing more to do (returns null).</remarks>
    /// <exception cref="ModelPackageException">The file cannot be read or is not an ONNX model.</exception>
    public static GraphRewrite? Rewrite(string path)
    {
        ModelProto model;
        try
        {
            using var stream = File.OpenRead(path);
            model = ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new ModelPackageException(path, $"not a valid ONNX model ({ex.Message})", ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ModelPackageException(path, $"the graph cannot be read ({ex.Message})", ex);
        }

        return Rewrite(model);
    }

    /// <summary>Rewrites <paramref name="model"/> in place; null when no rewrite applies (the model is then unchanged).</summary>
    internal static GraphRewrite? Rewrite(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var graph = model.Graph;
        var opset = model.OpsetImport.FirstOrDefault(static o => o.Domain is "" or "ai.onnx")?.Version ?? 0;
        if (graph is null || opset < 13)
        {
            // Reshape, Slice and Unsqueeze take their shapes and axes as inputs from opset 13 on, which the rewrites use.
            return null;
        }

        var nodesBefore = graph.Node.Count;
        var context = new Context(graph);
        var grouped = GroupQueryMatMuls(context);
        var identities = BypassIdentityConcats(context);
        if (grouped == 0 && identities == 0)
        {
            return null;
        }

        var removed = RemoveUnused(context);
        return new GraphRewrite(model.ToByteArray(), grouped, identities, nodesBefore, graph.Node.Count, removed);
    }

    // Unsqueeze(kv, axis 2) → Expand → Reshape [→ Transpose(0,1,3,2)] → MatMul(A, ·): A attends to kv repeated over the query
    // heads of each KV head. Replaced by MatMul(Reshape(A, [0, kvHeads, -1, 0]), kv [transposed]) reshaped to A's
    // [batch, heads, rows] and the MatMul's last axis; the repeat chain is left to RemoveUnused.
    private static int GroupQueryMatMuls(Context context)
    {
        var graph = context.Graph;
        var count = 0;
        foreach (var expand in graph.Node.Where(static n => IsOp(n, "Expand")).ToList())
        {
            if (context.Producer(expand.Input[0]) is not { } unsqueeze || !IsOp(unsqueeze, "Unsqueeze")
                || unsqueeze.Input.Count != 2 || context.Int64s(unsqueeze.Input[1]) is not ([2] or [-3]))
            {
                continue;
            }

            var kv = unsqueeze.Input[0];
            if (context.StaticDims(kv) is not { Length: 4 } kvDims || kvDims[1] <= 0
                || context.SoleConsumer(expand.Output[0]) is not { } reshape || !IsOp(reshape, "Reshape") || reshape.Input[0] != expand.Output[0]
                || context.SoleConsumer(reshape.Output[0]) is not { } next)
            {
                continue;
            }

            var transposed = false;
            var repeated = reshape.Output[0];
            if (IsOp(next, "Transpose"))
            {
                if (next.Attribute.FirstOrDefault(static a => a.Name == "perm") is not { } perm || !perm.Ints.SequenceEqual([0L, 1, 3, 2])
                    || context.SoleConsumer(next.Output[0]) is not { } afterTranspose)
                {
                    continue;
                }

                transposed = true;
                repeated = next.Output[0];
                next = afterTranspose;
            }

            if (!IsOp(next, "MatMul") || next.Input[1] != repeated || next.Input[0] == repeated)
            {
                continue;
            }

            var site = $"{Prefix}gqa{count}/";
            var a = next.Input[0];
            var replacement = new List<NodeProto>
            {
                Node("Reshape", site + "group_rows", [a, context.Constant($"{Prefix}grouped_shape_{kvDims[1]}", [0, kvDims[1], -1, 0])], site + "a"),
            };
            var right = kv;
            if (transposed)
            {
                var transpose = Node("Transpose", site + "transpose", [kv], site + "kv_t");
                transpose.Attribute.Add(new AttributeProto { Name = "perm", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 0, 1, 3, 2 } });
                replacement.Add(transpose);
                right = site + "kv_t";
            }

            replacement.Add(Node("MatMul", site + "matmul", [site + "a", right], site + "grouped"));
            replacement.Add(Node("Shape", site + "shape", [a], site + "a_shape"));
            replacement.Add(Node("Slice", site + "rows_shape", [site + "a_shape", context.Constant(Prefix + "zero", [0]), context.Constant(Prefix + "three", [3])], site + "a_rows"));
            replacement.Add(Node("Concat", site + "out_shape", [site + "a_rows", context.Constant(Prefix + "minus_one", [-1])], site + "out_shape"));
            replacement[^1].Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 0 });
            replacement.Add(Node("Reshape", site + "ungroup_rows", [site + "grouped", site + "out_shape"], next.Output[0]));
            context.Replace(next, replacement);
            count++;
        }

        return count;
    }

    // Concat with one input copies it: its readers read the input instead (unless the copy is a graph output). A copy that
    // a subgraph reads by name from the outer scope stays for it.
    private static int BypassIdentityConcats(Context context)
    {
        var graph = context.Graph;
        var count = 0;
        foreach (var concat in graph.Node.Where(n => IsOp(n, "Concat") && n.Input.Count == 1 && !context.IsGraphOutput(n.Output[0])).ToList())
        {
            var copy = concat.Output[0];
            foreach (var node in graph.Node)
            {
                for (var i = 0; i < node.Input.Count; i++)
                {
                    if (node.Input[i] == copy)
                    {
                        node.Input[i] = concat.Input[0];
                    }
                }
            }

            if (!context.IsReadBySubgraph(copy))
            {
                graph.Node.Remove(concat);
                count++;
            }
        }

        return count;
    }

    // Removes nodes none of whose outputs is read (by a node, a subgraph or as a graph output), until none is left, then
    // the initializers no node reads (ONNX Runtime warns about each of those at load) and the shapes declared for values
    // that are gone.
    private static int RemoveUnused(Context context)
    {
        var graph = context.Graph;
        var removed = 0;
        while (true)
        {
            var read = context.ReadOutsideTheMainGraph();
            foreach (var node in graph.Node)
            {
                read.UnionWith(node.Input);
            }

            var dead = graph.Node.Where(n => !n.Output.Any(read.Contains)).ToList();
            if (dead.Count == 0)
            {
                var inputs = graph.Input.Select(static i => i.Name).ToHashSet(StringComparer.Ordinal);
                foreach (var initializer in graph.Initializer.Where(i => !read.Contains(i.Name) && !inputs.Contains(i.Name)).ToList())
                {
                    graph.Initializer.Remove(initializer);
                }

                var values = graph.Node.SelectMany(static n => n.Output).Concat(inputs).Concat(graph.Initializer.Select(static i => i.Name)).ToHashSet(StringComparer.Ordinal);
                foreach (var info in graph.ValueInfo.Where(v => !values.Contains(v.Name)).ToList())
                {
                    graph.ValueInfo.Remove(info);
                }

                return removed;
            }

            foreach (var node in dead)
            {
                graph.Node.Remove(node);
            }

            removed += dead.Count;
        }
    }

    // Every name a node of a subgraph (at any depth) reads: outer-scope values they may capture.
    private static HashSet<string> ReadInSubgraphs(GraphProto graph)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
        {
            foreach (var attribute in node.Attribute)
            {
                foreach (var subgraph in attribute.Graphs.Append(attribute.G).OfType<GraphProto>())
                {
                    Collect(subgraph, names);
                }
            }
        }

        return names;

        static void Collect(GraphProto subgraph, HashSet<string> names)
        {
            foreach (var node in subgraph.Node)
            {
                names.UnionWith(node.Input);
                foreach (var attribute in node.Attribute)
                {
                    foreach (var nested in attribute.Graphs.Append(attribute.G).OfType<GraphProto>())
                    {
                        Collect(nested, names);
                    }
                }
            }
        }
    }

    private static bool IsOp(NodeProto node, string opType) => node.OpType == opType && node.Domain is "" or "ai.onnx";

    private static NodeProto Node(string opType, string name, string[] inputs, string output) =>
        new() { OpType = opType, Name = name, Input = { inputs }, Output = { output } };

    /// <summary>The graph's producer and consumer maps, kept up to date as nodes are replaced.</summary>
    private sealed class Context
    {
        private readonly Dictionary<string, NodeProto> _producers = new(StringComparer.Ordinal);
        private readonly Dictionary<string, List<NodeProto>> _consumers = new(StringComparer.Ordinal);
        private readonly Dictionary<string, TensorProto> _initializers;
        private readonly Dictionary<string, ValueInfoProto> _declared = new(StringComparer.Ordinal);
        private readonly HashSet<string> _graphOutputs;
        private readonly HashSet<string> _subgraphReads;

        public Context(GraphProto graph)
        {
            Graph = graph;
            foreach (var node in graph.Node)
            {
                Index(node);
            }

            _initializers = graph.Initializer.GroupBy(static i => i.Name).ToDictionary(static g => g.Key, static g => g.Last(), StringComparer.Ordinal);
            foreach (var info in graph.Input.Concat(graph.Output).Concat(graph.ValueInfo))
            {
                _declared.TryAdd(info.Name, info);
            }

            _graphOutputs = graph.Output.Select(static o => o.Name).ToHashSet(StringComparer.Ordinal);
            _subgraphReads = ReadInSubgraphs(graph);
        }

        public GraphProto Graph { get; }

        public NodeProto? Producer(string name) => _producers.GetValueOrDefault(name);

        public bool IsGraphOutput(string name) => _graphOutputs.Contains(name);

        public bool IsReadBySubgraph(string name) => _subgraphReads.Contains(name);

        /// <summary>A new set of the names read from outside the main graph's nodes: graph outputs and subgraphs' outer-scope reads.</summary>
        public HashSet<string> ReadOutsideTheMainGraph() => new(_graphOutputs.Concat(_subgraphReads), StringComparer.Ordinal);

        /// <summary>The one node that reads <paramref name="name"/> (once), if it is not also a graph output or read by a subgraph.</summary>
        public NodeProto? SoleConsumer(string name) =>
            _consumers.TryGetValue(name, out var readers) && readers.Count == 1 && readers[0].Input.Count(i => i == name) == 1
            && !_graphOutputs.Contains(name) && !_subgraphReads.Contains(name)
                ? readers[0]
                : null;

        /// <summary>The int64 values of a constant (an initializer or a <c>Constant</c> node), or null.</summary>
        public long[]? Int64s(string name)
        {
            var tensor = _initializers.GetValueOrDefault(name)
                ?? (Producer(name) is { OpType: "Constant" } constant
                    ? constant.Attribute.FirstOrDefault(static a => a.Name == "value")?.T
                    : null);
            if (tensor is null || tensor.DataType != (int)TensorProto.Types.DataType.Int64 || tensor.DataLocation == TensorProto.Types.DataLocation.External)
            {
                return null;
            }

            if (tensor.Int64Data.Count > 0)
            {
                return [.. tensor.Int64Data];
            }

            var raw = tensor.RawData.Span;
            var values = new long[raw.Length / sizeof(long)];
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = BinaryPrimitives.ReadInt64LittleEndian(raw[(i * sizeof(long))..]);
            }

            return values;
        }

        /// <summary>
        /// The dimensions of <paramref name="name"/> as declared (a graph input, output or value info; -1 where symbolic), or
        /// for an undeclared Concat output those of its first input with the concatenated axis unknown; null when unknown.
        /// </summary>
        public long[]? StaticDims(string name, int depth = 0)
        {
            if (_declared.TryGetValue(name, out var info) && info.Type?.TensorType?.Shape is { } shape)
            {
                return [.. shape.Dim.Select(static d => d.HasDimValue ? d.DimValue : -1)];
            }

            if (depth < 8 && Producer(name) is { } producer && IsOp(producer, "Concat") && producer.Input.Count > 0
                && StaticDims(producer.Input[0], depth + 1) is { } first)
            {
                var axis = producer.Attribute.FirstOrDefault(static a => a.Name == "axis")?.I ?? 0;
                axis = axis < 0 ? axis + first.Length : axis;
                if (axis >= 0 && axis < first.Length)
                {
                    first[axis] = -1;
                    return first;
                }
            }

            return null;
        }

        /// <summary>Adds an int64 initializer named <paramref name="name"/> (once: later calls reuse it); returns the name.</summary>
        public string Constant(string name, long[] values)
        {
            if (_initializers.ContainsKey(name))
            {
                return name;
            }

            var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
            tensor.Dims.Add(values.Length);
            tensor.Int64Data.AddRange(values);
            Graph.Initializer.Add(tensor);
            _initializers[name] = tensor;
            return name;
        }

        /// <summary>Puts <paramref name="replacement"/> (in order) where <paramref name="node"/> was.</summary>
        public void Replace(NodeProto node, IReadOnlyList<NodeProto> replacement)
        {
            var index = Graph.Node.IndexOf(node);
            Graph.Node.RemoveAt(index);
            foreach (var input in node.Input)
            {
                _consumers.GetValueOrDefault(input)?.Remove(node);
            }

            for (var i = 0; i < replacement.Count; i++)
            {
                Graph.Node.Insert(index + i, replacement[i]);
                Index(replacement[i]);
            }
        }

        private void Index(NodeProto node)
        {
            foreach (var output in node.Output)
            {
                _producers[output] = node;
            }

            foreach (var input in node.Input)
            {
                if (!_consumers.TryGetValue(input, out var readers))
                {
                    _consumers[input] = readers = [];
                }

                readers.Add(node);
            }
        }
    }
}

/// <summary>A rewritten graph (<see cref="GraphRewriter"/>): the serialized model and what was changed.</summary>
/// <param name="Model">The rewritten model's protobuf bytes; its external data, if any, stays where the original's is.</param>
/// <param name="GroupedMatMuls">Attention MatMuls that now read the KV cache without the grouped-query repeat.</param>
/// <param name="IdentityConcats">Single-input Concats bypassed.</param>
/// <param name="NodesBefore">Nodes in the main graph before.</param>
/// <param name="NodesAfter">Nodes in the main graph after.</param>
/// <param name="NodesRemoved">Nodes removed because nothing read them any more.</param>
public sealed record GraphRewrite(byte[] Model, int GroupedMatMuls, int IdentityConcats, int NodesBefore, int NodesAfter, int NodesRemoved)
{
    /// <summary>One line for the startup log.</summary>
    public string Summary =>
        $"graph rewritten at load ({NodesBefore} -> {NodesAfter} nodes): {GroupedMatMuls} attention MatMuls read the KV cache without the grouped-query repeat, "
        + $"{IdentityConcats} identity Concats bypassed, {NodesRemoved} unused nodes removed";
}
