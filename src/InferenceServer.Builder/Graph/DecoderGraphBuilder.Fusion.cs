// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Onnx.Proto;
using static InferenceServer.Builder.Graph.OnnxGraphWriter;

namespace InferenceServer.Builder.Graph;

/// <summary>
/// Fewer, fatter kernels per layer (ADR 0007), shared by the dense, paged, GenAI and split graphs: RMSNorm is one
/// <c>SimplifiedLayerNormalization</c>; a residual <c>Add</c> whose sum goes straight into the next RMSNorm becomes one
/// <c>com.microsoft.SkipSimplifiedLayerNormalization</c> (normalized output 0, the sum as output 3 for the residual
/// stream); gate and up are one projection over their weights concatenated by rows, cut by one <c>Split</c>.
/// </summary>
internal sealed partial class DecoderGraphBuilder
{
    /// <summary>The fused residual-add + RMSNorm op (domain <see cref="PagedAttentionDomain"/>, com.microsoft).</summary>
    public const string SkipNormOpType = "SkipSimplifiedLayerNormalization";

    /// <summary>The RMSNorm op (ONNX domain, as ONNX Runtime registers it; CPU and CUDA kernels).</summary>
    public const string NormOpType = "SimplifiedLayerNormalization";

    // The last residual Add not yet fused into a norm: the next RmsNorm of its sum rewrites it in place.
    private NodeProto? _residual;

    /// <summary>
    /// Emit the fused forms (default true). False writes the graphs as before ADR 0007 (separate residual Add and RMSNorm,
    /// the dense graph's RMSNorm as Pow/ReduceMean/Add/Sqrt/Div/Mul, gate and up as two projections), for before/after
    /// kernel counts.
    /// </summary>
    public bool FuseKernels { get; init; } = true;

    /// <summary>
    /// Whether residual adds fuse into the next norm: with <see cref="FuseKernels"/>, in fp32 or fp16 (ONNX Runtime's CUDA
    /// <c>SkipSimplifiedLayerNormalization</c> has float and half kernels, no bfloat16 one; bf16 keeps Add + RMSNorm).
    /// </summary>
    private bool FusesSkipNorm => FuseKernels && _g.ElementType != TensorProto.Types.DataType.Bfloat16;

    /// <summary>
    /// Whether the dense graph rotates q and k with one ONNX <c>RotaryEmbedding</c> (opset 23) per projection instead of
    /// the Split/Mul/Sub/Add/Concat form: with <see cref="FuseKernels"/>, in the dense graph of a non-MLA model (set by
    /// <see cref="Build"/>; the paged and GenAI graphs' attention ops rotate inside, the split segments get their rows as inputs).
    /// </summary>
    private bool RotaryOp { get; set; }

    /// <summary>
    /// ONNX <c>RotaryEmbedding</c> of [B, S, heads x d] <paramref name="x"/>: the first rotary_dim of each head rotated in
    /// halves by the cos/sin tables' rows at <c>position_ids</c>, the rest passed through.
    /// </summary>
    private string RotaryEmbedding(string prefix, string x, int heads)
    {
        List<AttributeProto> attributes = [Attr("interleaved", 0L), Attr("num_heads", (long)heads)];
        if (RotaryDim < _config.HeadDim)
        {
            attributes.Add(Attr("rotary_embedding_dim", (long)RotaryDim));
        }

        return _g.NodeMulti("RotaryEmbedding", prefix + "_rotary", [x, _cos, _sin, "position_ids"], [prefix + "_roped_3d"], [.. attributes], string.Empty)[0];
    }

    /// <summary><c>h + delta</c>, the residual stream; remembered so that an RMSNorm of the sum right after absorbs it.</summary>
    private string Residual(string name, string h, string delta)
    {
        var sum = _g.Node("Add", name, [h, delta]);
        _residual = FusesSkipNorm ? _g.LastNode : null;
        return sum;
    }

    /// <summary>
    /// RMSNorm over the last axis as transformers computes it, x / sqrt(mean(x^2) + eps) * w, fp32 statistics: one
    /// <c>SimplifiedLayerNormalization</c>, or, where <paramref name="x"/> is the pending residual sum, the residual Add
    /// rewritten as <c>SkipSimplifiedLayerNormalization</c> that also outputs the sum under its old name.
    /// </summary>
    private string RmsNorm(string name, string x, string weightName, int width)
    {
        var weight = _g.Weight(weightName, _weights.ReadFloat32(weightName, width), width);
        var epsilon = (float)_config.RmsNormEps;
        if (_residual is { } add && add.Output[0] == x)
        {
            _residual = null;
            add.OpType = SkipNormOpType;
            add.Domain = PagedAttentionDomain;
            add.Name = name;
            add.Input.Add(weight);
            add.Output.Clear();
            add.Output.AddRange([name, string.Empty, string.Empty, x]);
            add.Attribute.Add(Attr("epsilon", epsilon));
            return name;
        }

        if (_paged || FuseKernels)
        {
            return _g.Node(NormOpType, name, [x, weight], Attr("axis", -1L), Attr("epsilon", epsilon), Attr("stash_type", 1L));
        }

        var squared = _g.Node("Pow", name + "_sq", [x, _g.ElementScalar(2f)]);
        var mean = _g.Node("ReduceMean", name + "_mean", [squared, _g.Int64s(-1)], Attr("keepdims", 1L));
        var shifted = _g.Node("Add", name + "_eps", [mean, _g.ElementScalar(epsilon)]);
        var root = _g.Node("Sqrt", name + "_sqrt", [shifted]);
        var normalized = _g.Node("Div", name + "_div", [x, root]);
        return _g.Node("Mul", name, [normalized, weight]);
    }

    /// <summary>
    /// Layer prefix <paramref name="p"/>'s gate and up projections of <paramref name="y"/>, [rows, width] each: Phi-3's
    /// fused gate_up as it is, or (with <see cref="FuseKernels"/>) gate's and up's weights concatenated by rows into
    /// <c>mlp.gate_up_packed.weight</c>; one GEMM (or MatMulNBits) and one Split instead of two GEMMs.
    /// </summary>
    private (string Gate, string Up) GateUpProjections(string n, string p, string y, int width)
    {
        var hidden = _config.HiddenSize;
        string gateUp;
        if (_weights.Contains(p + "mlp.gate_up_proj.weight"))
        {
            gateUp = MatMul(n + "gate_up_proj", y, p + "mlp.gate_up_proj.weight", 2 * width, hidden);
        }
        else if (FuseKernels)
        {
            var weight = new float[2L * width * hidden];
            _weights.ReadFloat32(p + "mlp.gate_proj.weight", width, hidden).CopyTo(weight, 0);
            _weights.ReadFloat32(p + "mlp.up_proj.weight", width, hidden).CopyTo(weight, (long)width * hidden);
            gateUp = MatMul(n + "gate_up_proj", y, p + "mlp.gate_up_packed.weight", weight, 2 * width, hidden);
        }
        else
        {
            return (
                MatMul(n + "gate_proj", y, p + "mlp.gate_proj.weight", width, hidden),
                MatMul(n + "up_proj", y, p + "mlp.up_proj.weight", width, hidden));
        }

        var parts = _g.NodeMulti("Split", n + "gate_up_split", [gateUp, _g.Int64s(width, width)], [n + "gate_proj", n + "up_proj"], [Attr("axis", -1L)], string.Empty);
        return (parts[0], parts[1]);
    }
}
