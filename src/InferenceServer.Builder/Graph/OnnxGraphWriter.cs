// Licensed under the MIT License. See LICENSE in the repository root.
using Google.Protobuf;
using InferenceServer.Builder.Onnx.Proto;

namespace InferenceServer.Builder.Graph;

/// <summary>
/// Accumulates an ONNX graph: nodes with unique names, inline constants, external-data weights, and typed graph inputs
/// and outputs with symbolic dimensions. <see cref="Save"/> writes <c>model.onnx</c>.
/// </summary>
internal sealed class OnnxGraphWriter
{
    private readonly GraphProto _graph = new() { Name = "decoder" };
    private readonly ExternalDataWriter _data;
    private readonly Dictionary<string, string> _int64Constants = new(StringComparer.Ordinal);
    private readonly Dictionary<float, string> _floatConstants = [];
    private readonly Dictionary<float, string> _elementConstants = [];
    private int _nodeCount;

    /// <summary>Creates a writer whose weights go to <paramref name="data"/> as fp32.</summary>
    public OnnxGraphWriter(ExternalDataWriter data)
        : this(data, TensorProto.Types.DataType.Float)
    {
    }

    /// <summary>Creates a writer whose weights go to <paramref name="data"/> converted to <paramref name="elementType"/>.</summary>
    public OnnxGraphWriter(ExternalDataWriter data, TensorProto.Types.DataType elementType)
    {
        _data = data;
        ElementType = elementType;
    }

    /// <summary>The element type T of weights and activations: fp32, fp16 or bf16.</summary>
    public TensorProto.Types.DataType ElementType { get; }

    /// <summary>Number of weight parameters written.</summary>
    public long ParameterCount { get; private set; }

    /// <summary>Adds node <paramref name="opType"/> with one output, named after the node; returns the output.</summary>
    public string Node(string opType, string name, IReadOnlyList<string> inputs, params AttributeProto[] attributes) =>
        NodeMulti(opType, name, inputs, [name], attributes, string.Empty)[0];

    /// <summary>Adds a node with the given outputs and domain; returns the outputs.</summary>
    public IReadOnlyList<string> NodeMulti(string opType, string name, IReadOnlyList<string> inputs, IReadOnlyList<string> outputs, AttributeProto[] attributes, string domain)
    {
        var node = new NodeProto { OpType = opType, Name = name, Domain = domain };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        _nodeCount++;
        return outputs;
    }

    /// <summary>Writes a weight, converted to <see cref="ElementType"/>, to the external data file as initializer <paramref name="name"/>.</summary>
    public string Weight(string name, ReadOnlySpan<float> data, params long[] dims)
    {
        _graph.Initializer.Add(_data.Write(name, data, dims, ElementType));
        ParameterCount += data.Length;
        return name;
    }

    /// <summary>
    /// Writes a quantized weight's uint8 bytes as initializer <paramref name="name"/>, counting
    /// <paramref name="parameters"/> weight parameters (the elements they stand for, not the bytes).
    /// </summary>
    public string PackedWeight(string name, ReadOnlySpan<byte> data, long parameters, params long[] dims)
    {
        _graph.Initializer.Add(_data.WriteBytes(name, data, dims));
        ParameterCount += parameters;
        return name;
    }

    /// <summary>Writes quantization <paramref name="scales"/>, converted to <see cref="ElementType"/>, without counting them as parameters.</summary>
    public string Scales(string name, ReadOnlySpan<float> scales, params long[] dims)
    {
        _graph.Initializer.Add(_data.Write(name, scales, dims, ElementType));
        return name;
    }

    /// <summary>An int64 1-D constant (shared by value).</summary>
    public string Int64s(params long[] values)
    {
        var key = string.Join(",", values);
        if (!_int64Constants.TryGetValue(key, out var name))
        {
            name = $"const_i64_{_int64Constants.Count}";
            _graph.Initializer.Add(ExternalDataWriter.Inline<long>(name, TensorProto.Types.DataType.Int64, values, [values.Length]));
            _int64Constants.Add(key, name);
        }

        return name;
    }

    /// <summary>An int64 scalar constant.</summary>
    public string Int64Scalar(long value)
    {
        var key = "s" + value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (!_int64Constants.TryGetValue(key, out var name))
        {
            name = $"const_i64_scalar_{_int64Constants.Count}";
            _graph.Initializer.Add(ExternalDataWriter.Inline<long>(name, TensorProto.Types.DataType.Int64, [value], []));
            _int64Constants.Add(key, name);
        }

        return name;
    }

    /// <summary>An fp32 scalar constant (shared by value).</summary>
    public string FloatScalar(float value)
    {
        if (!_floatConstants.TryGetValue(value, out var name))
        {
            name = $"const_f32_{_floatConstants.Count}";
            _graph.Initializer.Add(ExternalDataWriter.Inline<float>(name, TensorProto.Types.DataType.Float, [value], []));
            _floatConstants.Add(value, name);
        }

        return name;
    }

    /// <summary>A scalar constant in <see cref="ElementType"/> (shared by value), for constants that meet activations.</summary>
    public string ElementScalar(float value)
    {
        if (ElementType == TensorProto.Types.DataType.Float)
        {
            return FloatScalar(value);
        }

        if (!_elementConstants.TryGetValue(value, out var name))
        {
            name = $"const_t_{_elementConstants.Count}";
            Span<ushort> bits = stackalloc ushort[1];
            ElementTypes.Convert([value], bits, ElementType);
            _graph.Initializer.Add(ExternalDataWriter.Inline<ushort>(name, ElementType, bits, []));
            _elementConstants.Add(value, name);
        }

        return name;
    }

    /// <summary>Declares a graph input; a dimension is a number or a symbolic name.</summary>
    public void Input(string name, TensorProto.Types.DataType type, params object[] dims) => _graph.Input.Add(ValueInfo(name, type, dims));

    /// <summary>Declares a graph output.</summary>
    public void Output(string name, TensorProto.Types.DataType type, params object[] dims) => _graph.Output.Add(ValueInfo(name, type, dims));

    /// <summary>The node added last, for a builder that rewrites it in place (a fusion of it with the node that follows).</summary>
    public NodeProto LastNode => _graph.Node[^1];

    /// <summary>Number of nodes so far.</summary>
    public int NodeCount => _nodeCount;

    /// <summary>Writes the model (IR <paramref name="irVersion"/>, the given opsets) to <paramref name="path"/>.</summary>
    public void Save(string path, long irVersion, IReadOnlyList<(string Domain, long Version)> opsets, IReadOnlyDictionary<string, string> metadata)
    {
        var model = new ModelProto
        {
            IrVersion = irVersion,
            ProducerName = "InferenceServer.Builder",
            ProducerVersion = typeof(OnnxGraphWriter).Assembly.GetName().Version?.ToString() ?? "0",
            Graph = _graph,
        };
        foreach (var (domain, version) in opsets)
        {
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
        }

        foreach (var (key, value) in metadata)
        {
            model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        }

        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        model.WriteTo(stream);
    }

    /// <summary>An int attribute.</summary>
    public static AttributeProto Attr(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    /// <summary>A float attribute.</summary>
    public static AttributeProto Attr(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    /// <summary>A string attribute.</summary>
    public static AttributeProto Attr(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    /// <summary>An ints attribute.</summary>
    public static AttributeProto Attr(string name, long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var dim in dims)
        {
            shape.Dim.Add(dim switch
            {
                int n => new TensorShapeProto.Types.Dimension { DimValue = n },
                long n => new TensorShapeProto.Types.Dimension { DimValue = n },
                string s => new TensorShapeProto.Types.Dimension { DimParam = s },
                _ => throw new ArgumentException($"dimension {dim} is neither a number nor a name", nameof(dims)),
            });
        }

        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }
}
