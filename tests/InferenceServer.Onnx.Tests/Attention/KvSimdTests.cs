using System.Runtime.InteropServices;
using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Tests.Attention;

/// <summary><see cref="KvSimd"/>: the vector conversions agree bit for bit with the scalar ones.</summary>
public sealed class KvSimdTests
{
    [Fact]
    public void Convert_EveryHalf_MatchesScalarConversion()
    {
        var bits = new ushort[65536];
        for (var i = 0; i < bits.Length; i++)
        {
            bits[i] = (ushort)i;
        }

        var actual = new float[bits.Length + 3];
        // An odd count, so the scalar tail runs too.
        KvSimd.Convert(MemoryMarshal.AsBytes(bits.AsSpan(0, bits.Length - 1)), actual, KvStorage.Float16);

        for (var i = 0; i < bits.Length - 1; i++)
        {
            var expected = (float)BitConverter.UInt16BitsToHalf(bits[i]);
            if (float.IsNaN(expected))
            {
                Assert.True(float.IsNaN(actual[i]), $"0x{i:X4}");
            }
            else
            {
                Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(actual[i]), $"0x{i:X4}: {actual[i]} vs {expected}");
            }
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public unsafe void ScoresTransposed16_EveryHalf_ConvertsAsTheScalarConversion(bool finite)
    {
        // Each half is a key in dimension 0 of a transposed [2, 16] block (dimension 1 is zero): a query of (1, 0) scores
        // each position with exactly its key. The finite-only conversion is asked only for finite halves.
        // The routine exists only where AVX-512 does (this project's machines have it; the kernel falls back elsewhere).
        if (!KvSimd.CanScoreTransposed16(16, 2))
        {
            return;
        }

        var block = new ushort[32];
        var scores = new float[16];
        float[] query = [1f, 0f];
        for (var start = 0; start < 65536; start += 16)
        {
            for (var j = 0; j < 16; j++)
            {
                var bits = (ushort)(start + j);
                block[j] = finite && !Half.IsFinite(BitConverter.UInt16BitsToHalf(bits)) ? (ushort)0 : bits;
            }

            fixed (ushort* keys = block)
            fixed (float* q = query)
            fixed (float* s = scores)
            {
                KvSimd.ScoresTransposed16((byte*)keys, KvStorage.Float16, finite, 16, 2, q, 1, s, 16);
            }

            for (var j = 0; j < 16; j++)
            {
                var expected = (float)BitConverter.UInt16BitsToHalf(block[j]);
                Assert.True(float.IsNaN(expected) ? float.IsNaN(scores[j]) : expected == scores[j], $"0x{block[j]:X4}: {scores[j]} vs {expected}");
            }
        }
    }

    [Fact]
    public void Convert_BFloat16_IsTheUpperHalf()
    {
        float[] values = [0f, -0f, 1f, -2.5f, 3.0e38f, float.PositiveInfinity, float.Epsilon, 1.00390625f, 1.01171875f];
        var bits = values.Select(KvConvert.ToBFloat16).ToArray();
        var actual = new float[values.Length];
        KvSimd.Convert(MemoryMarshal.AsBytes(bits.AsSpan()), actual, KvStorage.BFloat16);

        for (var i = 0; i < values.Length; i++)
        {
            Assert.Equal(BitConverter.SingleToUInt32Bits(values[i]) + 0x7FFFu + ((BitConverter.SingleToUInt32Bits(values[i]) >> 16) & 1) >> 16 << 16,
                BitConverter.SingleToUInt32Bits(actual[i]));
        }

        Assert.True(float.IsNaN(KvConvert.FromBFloat16(KvConvert.ToBFloat16(float.NaN))));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(64)]
    [InlineData(133)]
    public void DotAndAxpy_MatchScalar(int count)
    {
        var random = new Random(count);
        var a = AttentionReference.Random(random, count);
        var b = AttentionReference.Random(random, count);
        var y = AttentionReference.Random(random, count);
        var expectedDot = 0.0;
        var expectedY = new double[count];
        for (var i = 0; i < count; i++)
        {
            expectedDot += (double)a[i] * b[i];
            expectedY[i] = y[i] + (0.5 * a[i]);
        }

        Assert.Equal(expectedDot, KvSimd.Dot(a, b), 4);
        KvSimd.Axpy(y, 0.5f, a);

        for (var i = 0; i < count; i++)
        {
            Assert.Equal(expectedY[i], y[i], 5);
        }
    }
}
