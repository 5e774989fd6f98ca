// Licensed under the MIT License. See LICENSE in the repository root.
using static InferenceServer.Builder.Graph.OnnxGraphWriter;

namespace InferenceServer.Builder.Graph;

/// <summary>
/// int4 weights (<c>build --dtype int4</c>, ADR 0006): with <see cref="Quantizer"/> set, the decoder layers' linear
/// projections (q/k/v or packed qkv, o, gate/up or gate_up, down) become <c>com.microsoft.MatMulNBits</c> over weights
/// quantized by <see cref="Int4Quantizer"/>; embeddings, the LM head, norms, MLA and MoE stay in the activation type.
/// </summary>
internal sealed partial class DecoderGraphBuilder
{
    /// <summary>The domain of <c>MatMulNBits</c>.</summary>
    public const string MatMulNBitsDomain = "com.microsoft";

    /// <summary>The int4 projection op.</summary>
    public const string MatMulNBitsOpType = "MatMulNBits";

    /// <summary>
    /// <c>MatMulNBits</c>' <c>accuracy_level</c>: 0, the kernel's most accurate compute (fp32 on CPU, the activation type on
    /// CUDA); level 4 (int8 activations) is faster on CPU but quantizes activations too.
    /// </summary>
    public const long Int4AccuracyLevel = 0;

    /// <summary>Quantizes the layers' projections to int4 when set; null (default) keeps them in the activation type.</summary>
    public Int4Quantizer? Quantizer { get; init; }

    /// <summary><c>x @ W^T</c> for checkpoint weight <paramref name="weightName"/> [<paramref name="outFeatures"/>, <paramref name="inFeatures"/>]: <c>Gemm</c>, or <c>MatMulNBits</c> with <see cref="Quantizer"/>.</summary>
    private string MatMul(string name, string x, string weightName, int outFeatures, int inFeatures) =>
        Quantizer is null
            ? _g.Node("Gemm", name, [x, Linear(weightName, outFeatures, inFeatures)], Attr("transB", 1L))
            : MatMul(name, x, weightName, _weights.ReadFloat32(weightName, outFeatures, inFeatures), outFeatures, inFeatures);

    /// <summary>As <see cref="MatMul(string, string, string, int, int)"/> over an already read (or packed) fp32 <paramref name="weight"/>.</summary>
    private string MatMul(string name, string x, string weightName, ReadOnlySpan<float> weight, int outFeatures, int inFeatures)
    {
        if (Quantizer is not { } quantizer)
        {
            return _g.Node("Gemm", name, [x, _g.Weight(weightName, weight, outFeatures, inFeatures)], Attr("transB", 1L));
        }

        var q = quantizer.Quantize(weight, outFeatures, inFeatures);
        var blocks = quantizer.BlocksPerRow(inFeatures);
        List<string> inputs =
        [
            x,
            _g.PackedWeight(weightName + "_Q4", q.Packed, (long)outFeatures * inFeatures, outFeatures, blocks, quantizer.BlockSize / 2),
            _g.Scales(weightName + "_scales", q.Scales, (long)outFeatures * blocks),
        ];
        if (q.ZeroPoints is { } zeroPoints)
        {
            inputs.Add(_g.PackedWeight(weightName + "_zero_points", zeroPoints, 0, zeroPoints.Length));
        }

        return _g.NodeMulti(
            MatMulNBitsOpType,
            name,
            inputs,
            [name],
            [Attr("K", (long)inFeatures), Attr("N", (long)outFeatures), Attr("bits", 4L), Attr("block_size", (long)quantizer.BlockSize), Attr("accuracy_level", Int4AccuracyLevel)],
            MatMulNBitsDomain)[0];
    }
}
