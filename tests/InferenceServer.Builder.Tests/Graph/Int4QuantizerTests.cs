// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Graph;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// <see cref="Int4Quantizer"/>'s packing in <c>MatMulNBits</c>' layout, checked against a dequantization written out here
/// from the op's contract (nibbles low first, scales row-major, zero points two blocks a byte, implicit 8).
/// </summary>
public sealed class Int4QuantizerTests
{
    [Fact]
    public void Symmetric_OneBlock_PacksLowNibbleFirstWithTheExtremeAtMinusEight()
    {
        // Largest magnitude -1.6 -> scale 0.2, q = round(w / 0.2) + 8.
        var weight = new float[32];
        weight[0] = -1.6f;
        weight[1] = 0.2f;
        weight[2] = 0.41f;
        weight[3] = 1.6f;
        var q = new Int4Quantizer(32, zeroPoints: false).Quantize(weight, 1, 32);

        Assert.Equal([0.2f], q.Scales);
        Assert.Null(q.ZeroPoints);
        Assert.Equal(16, q.Packed.Length);
        Assert.Equal(0x90, q.Packed[0]); // k0 -> 0 (low), k1 -> 9 (high)
        Assert.Equal(0xFA, q.Packed[1]); // k2 -> 10, k3 -> 16 clamped to 15
        Assert.All(q.Packed[2..], b => Assert.Equal(0x88, b)); // zeros sit at the implicit zero point
    }

    [Theory]
    [InlineData(32, false, 64)]
    [InlineData(32, true, 64)]
    [InlineData(128, false, 64)] // K shorter than a block: padded
    [InlineData(128, true, 200)] // K not a multiple of the block: padded
    [InlineData(32, true, 100)]
    public void Dequantized_MatchesTheContractAndIsWithinHalfAStep(int blockSize, bool zeroPoints, int k)
    {
        const int N = 7;
        var random = new Random(19);
        var weight = new float[N * k];
        for (var i = 0; i < weight.Length; i++)
        {
            weight[i] = (float)((random.NextDouble() * 2) - 1) * (i % 5 == 0 ? 3f : 0.5f);
        }

        var quantizer = new Int4Quantizer(blockSize, zeroPoints);
        var q = quantizer.Quantize(weight, N, k);
        var blocks = (k + blockSize - 1) / blockSize;
        Assert.Equal(N * blocks * (blockSize / 2), q.Packed.Length);
        Assert.Equal(N * blocks, q.Scales.Length);
        Assert.Equal(zeroPoints ? N * ((blocks + 1) / 2) : -1, q.ZeroPoints?.Length ?? -1);

        var dequantized = Int4Quantizer.Dequantize(q);
        for (var n = 0; n < N; n++)
        {
            for (var col = 0; col < k; col++)
            {
                var b = col / blockSize;
                var within = col % blockSize;
                var packed = q.Packed[(((n * blocks) + b) * (blockSize / 2)) + (within / 2)];
                var nibble = within % 2 == 0 ? packed & 0x0F : packed >> 4;
                var zeroByte = zeroPoints ? q.ZeroPoints![(n * ((blocks + 1) / 2)) + (b / 2)] : 0;
                var zero = !zeroPoints ? 8 : b % 2 == 0 ? zeroByte & 0x0F : zeroByte >> 4;
                var scale = q.Scales[(n * blocks) + b];
                var expected = (nibble - zero) * scale;
                Assert.Equal(expected, dequantized[(n * k) + col]);

                // Round to nearest: within half a step, except where the value is clamped at the range's end.
                var error = Math.Abs(weight[(n * k) + col] - expected);
                Assert.True(error <= (Math.Abs(scale) * 0.5f) + 1e-6f || nibble is 0 or 15, $"[{n}, {col}]: {weight[(n * k) + col]} -> {expected} (scale {scale})");
            }
        }
    }

    [Fact]
    public void ZeroPoints_ReduceTheErrorOfAOneSidedBlock()
    {
        // All-positive weights: the symmetric grid wastes half its levels; the asymmetric one uses all 16.
        var weight = Enumerable.Range(0, 32).Select(i => 0.5f + (i / 64f)).ToArray();
        var symmetric = Int4Quantizer.Dequantize(new Int4Quantizer(32, false).Quantize(weight, 1, 32));
        var asymmetric = Int4Quantizer.Dequantize(new Int4Quantizer(32, true).Quantize(weight, 1, 32));
        var symmetricError = weight.Select((w, i) => Math.Abs(w - symmetric[i])).Max();
        var asymmetricError = weight.Select((w, i) => Math.Abs(w - asymmetric[i])).Max();
        Assert.True(asymmetricError < symmetricError, $"{asymmetricError} vs {symmetricError}");
    }

    [Theory]
    [InlineData(16)]
    [InlineData(64)]
    public void UnsupportedBlockSize_IsRefused(int blockSize)
        => Assert.Contains("32 or 128", Assert.Throws<ModelBuildException>(() => new Int4Quantizer(blockSize, false)).Message, StringComparison.Ordinal);
}
