// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Graph;
using DataType = InferenceServer.Builder.Onnx.Proto.TensorProto.Types.DataType;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>The fp32 to fp16/bf16 conversions of weights: round to nearest, ties to even, NaN kept.</summary>
public sealed class ElementTypesTests
{
    [Theory]
    [InlineData(0x3F800000u, 0x3F80)] // 1
    [InlineData(0xC0000000u, 0xC000)] // -2
    [InlineData(0x00000000u, 0x0000)]
    [InlineData(0x40490FDBu, 0x4049)] // pi: below half, down
    [InlineData(0x3F808000u, 0x3F80)] // a tie; 0x3F80 is even, stays
    [InlineData(0x3F818000u, 0x3F82)] // a tie; 0x3F81 is odd, up to even
    [InlineData(0x3F808001u, 0x3F81)] // just above the tie, up
    [InlineData(0x7F7FFFFFu, 0x7F80)] // the largest float rounds to infinity
    [InlineData(0xFF800000u, 0xFF80)] // -infinity
    public void BFloat16_RoundsToNearestEven(uint bits, int expected)
        => Assert.Equal((ushort)expected, ElementTypes.ToBFloat16(BitConverter.UInt32BitsToSingle(bits)));

    [Fact]
    public void BFloat16_KeepsNaNANaN()
    {
        var bits = ElementTypes.ToBFloat16(BitConverter.UInt32BitsToSingle(0x7F800001));
        Assert.True(float.IsNaN(BitConverter.UInt32BitsToSingle((uint)bits << 16)));
    }

    [Fact]
    public void Convert_Fp16AndBf16_MatchHalfAndTheBf16Rule()
    {
        float[] values = [1.0f, -0.333333343f, 65504f, 65520f, 6.103515625e-5f, 1e-8f];
        var half = new ushort[values.Length];
        var brain = new ushort[values.Length];
        ElementTypes.Convert(values, half, DataType.Float16);
        ElementTypes.Convert(values, brain, DataType.Bfloat16);
        Assert.Equal([0x3C00, 0xB555, 0x7BFF, 0x7C00, 0x0400, 0x0000], half.Select(h => (int)h));
        Assert.Equal(values.Select(v => (int)ElementTypes.ToBFloat16(v)), brain.Select(b => (int)b));
    }

    [Theory]
    [InlineData("fp32", (int)DataType.Float, 4)]
    [InlineData("fp16", (int)DataType.Float16, 2)]
    [InlineData("bf16", (int)DataType.Bfloat16, 2)]
    public void Names_MapToOnnxTypesAndSizes(string name, int type, int size)
    {
        Assert.Equal((DataType)type, ElementTypes.FromName(name));
        Assert.Equal(size, ElementTypes.Size((DataType)type));
    }
}
