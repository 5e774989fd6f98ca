// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Onnx.Proto;

namespace InferenceServer.Builder.Graph;

/// <summary>The graph element types the builder writes (fp32, fp16, bf16): names, ONNX types, sizes and conversions.</summary>
internal static class ElementTypes
{
    /// <summary>The ONNX element type of a <c>--dtype</c> name (<c>fp32</c>, <c>fp16</c>, <c>bf16</c>).</summary>
    /// <exception cref="ModelBuildException">Not one of those names.</exception>
    public static TensorProto.Types.DataType FromName(string dtype) => dtype switch
    {
        "fp32" => TensorProto.Types.DataType.Float,
        "fp16" => TensorProto.Types.DataType.Float16,
        "bf16" => TensorProto.Types.DataType.Bfloat16,
        _ => throw new ModelBuildException($"--dtype {dtype}: unknown; use fp32, fp16 or bf16"),
    };

    /// <summary>Bytes per element.</summary>
    public static int Size(TensorProto.Types.DataType type) => type switch
    {
        TensorProto.Types.DataType.Float => 4,
        TensorProto.Types.DataType.Float16 or TensorProto.Types.DataType.Bfloat16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "not a graph element type"),
    };

    /// <summary>Converts fp32 <paramref name="source"/> to the 16-bit <paramref name="type"/>'s bit patterns.</summary>
    public static void Convert(ReadOnlySpan<float> source, Span<ushort> destination, TensorProto.Types.DataType type)
    {
        if (type == TensorProto.Types.DataType.Float16)
        {
            for (var i = 0; i < source.Length; i++)
            {
                destination[i] = BitConverter.HalfToUInt16Bits((Half)source[i]);
            }
        }
        else if (type == TensorProto.Types.DataType.Bfloat16)
        {
            for (var i = 0; i < source.Length; i++)
            {
                destination[i] = ToBFloat16(source[i]);
            }
        }
        else
        {
            throw new ArgumentOutOfRangeException(nameof(type), type, "not a 16-bit graph element type");
        }
    }

    /// <summary>bf16 bits of <paramref name="value"/>: the top 16 bits of fp32, rounded to nearest even; NaN stays a quiet NaN.</summary>
    public static ushort ToBFloat16(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            return (ushort)((bits >> 16) | 0x0040);
        }

        var rounding = 0x7FFFu + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}
