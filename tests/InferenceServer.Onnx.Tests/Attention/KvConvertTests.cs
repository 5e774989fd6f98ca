using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Tests.Attention;

/// <summary>
/// <see cref="KvConvert.Narrow"/> (the vector float -> fp16/bf16 conversion the pools store with) gives the scalar
/// conversions' bits: <c>(Half)x</c> and <see cref="KvConvert.ToBFloat16(float)"/>, over a spread of every float
/// exponent and at every fp16 rounding boundary (ties to even, the subnormal range, the overflow to infinity).
/// </summary>
public sealed class KvConvertTests
{
    [Fact]
    public void Narrow_Half_MatchesTheScalarConversion_OnASpreadOfAllFloats()
    {
        var values = new List<float>();
        for (var bits = 0L; bits <= uint.MaxValue; bits += 4093)
        {
            values.Add(BitConverter.UInt32BitsToSingle((uint)bits));
        }

        Check(values, KvStorage.Float16);
        Check(values, KvStorage.BFloat16);
    }

    [Fact]
    public void Narrow_Half_MatchesTheScalarConversion_AtEveryRoundingBoundary()
    {
        // For every positive finite half h: h itself, the exact midpoint to the next half (a tie), and one float ulp
        // either side of it; with both signs. Covers subnormals, ties to even, and 65504..65520..65536 (overflow).
        var values = new List<float>();
        for (var bits = 0; bits < 0x7C00; bits++)
        {
            var h = (double)BitConverter.UInt16BitsToHalf((ushort)bits);
            var next = (double)BitConverter.UInt16BitsToHalf((ushort)(bits + 1));
            var middle = (float)((h + next) / 2);
            foreach (var value in (float[])[(float)h, middle, MathF.BitDecrement(middle), MathF.BitIncrement(middle)])
            {
                values.Add(value);
                values.Add(-value);
            }
        }

        values.AddRange([float.PositiveInfinity, float.NegativeInfinity, float.NaN, -float.NaN, float.MaxValue, float.Epsilon, -0f, 65519.99f, 65520f, 1e-8f, 2.9802322e-8f, 2.9802326e-8f]);
        Check(values, KvStorage.Float16);
        Check(values, KvStorage.BFloat16);
    }

    [Theory]
    [InlineData(KvStorage.Float16)]
    [InlineData(KvStorage.BFloat16)]
    public unsafe void Store_AndStoreStrided_WriteTheNarrowedBits(KvStorage storage)
    {
        // 300 values: more than one 256-value chunk of StoreStrided, and a scalar tail.
        var random = new Random(5);
        var values = Enumerable.Range(0, 300).Select(_ => (float)((random.NextDouble() - 0.5) * 1000)).ToArray();
        var expected = values.Select(v => Scalar(v, storage)).ToArray();
        var row = new ushort[300];
        var column = new ushort[300 * 3];
        fixed (ushort* r = row)
        fixed (ushort* c = column)
        {
            KvConvert.Store(values, (byte*)r, storage);
            KvConvert.StoreStrided(values, (byte*)(c + 1), 3, storage);
        }

        Assert.Equal(expected, row);
        Assert.Equal(expected, Enumerable.Range(0, 300).Select(i => column[(i * 3) + 1]).ToArray());
        Assert.All(Enumerable.Range(0, 300), i => Assert.Equal(0, column[i * 3] + column[(i * 3) + 2]));
    }

    private static ushort Scalar(float value, KvStorage storage) =>
        storage == KvStorage.Float16 ? BitConverter.HalfToUInt16Bits((Half)value) : KvConvert.ToBFloat16(value);

    private static void Check(List<float> values, KvStorage storage)
    {
        var actual = new ushort[values.Count];
        KvConvert.Narrow(values.ToArray(), actual, storage);
        for (var i = 0; i < values.Count; i++)
        {
            var expected = Scalar(values[i], storage);
            if (float.IsNaN(values[i]))
            {
                var nan = storage == KvStorage.Float16 ? Half.IsNaN(BitConverter.UInt16BitsToHalf(actual[i])) : float.IsNaN(KvConvert.FromBFloat16(actual[i]));
                Assert.True(nan, $"{storage} NaN 0x{BitConverter.SingleToUInt32Bits(values[i]):X8} -> 0x{actual[i]:X4}");
            }
            else
            {
                Assert.True(expected == actual[i], $"{storage} {values[i]:R} (0x{BitConverter.SingleToUInt32Bits(values[i]):X8}): 0x{actual[i]:X4}, scalar 0x{expected:X4}");
            }
        }
    }
}
