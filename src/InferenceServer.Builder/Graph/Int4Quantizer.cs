// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Graph;

/// <summary>
/// Round-to-nearest 4-bit block quantization of a linear layer's <c>[N, K]</c> weight into the layout of ONNX Runtime's
/// <c>com.microsoft.MatMulNBits</c> (bits 4): along K in blocks of <see cref="BlockSize"/>, each block one scale and, with
/// <see cref="ZeroPoints"/>, one 4-bit zero point; without them the zero point is the op's default 8 (symmetric).
/// <list type="bullet">
/// <item><c>B</c>: uint8 <c>[N, blocks, BlockSize / 2]</c>, element k of a row in byte k / 2, the low nibble for even k;
/// K is padded with zeros up to a whole number of blocks.</item>
/// <item><c>scales</c>: <c>[N * blocks]</c>, row-major.</item>
/// <item><c>zero_points</c>: uint8 <c>[N * ceil(blocks / 2)]</c>, block b of a row in byte b / 2, the low nibble for even b.</item>
/// </list>
/// Symmetric: the block's value of largest magnitude m maps to -8, scale = m / -8, q = clamp(round(w / scale) + 8, 0, 15)
/// (the rule of ONNX Runtime's own blockwise quantizer). With zero points: the block range widened to include 0,
/// scale = (max - min) / 15, zp = clamp(round(-min / scale), 0, 15), q = clamp(round(w / scale) + zp, 0, 15).
/// Dequantized: w' = (q - zp) * scale.
/// </summary>
internal sealed class Int4Quantizer
{
    /// <summary>The block sizes <c>build --int4-block-size</c> accepts.</summary>
    public static readonly int[] BlockSizes = [32, 128];

    /// <summary>Creates a quantizer with blocks of <paramref name="blockSize"/> (32 or 128) and, optionally, zero points.</summary>
    public Int4Quantizer(int blockSize, bool zeroPoints)
    {
        if (Array.IndexOf(BlockSizes, blockSize) < 0)
        {
            throw new ModelBuildException($"--int4-block-size {blockSize}: use 32 or 128");
        }

        BlockSize = blockSize;
        ZeroPoints = zeroPoints;
    }

    /// <summary>Elements of K per scale.</summary>
    public int BlockSize { get; }

    /// <summary>Whether each block carries its own zero point (asymmetric) instead of the implicit 8.</summary>
    public bool ZeroPoints { get; }

    /// <summary>Blocks per row for <paramref name="k"/> input features.</summary>
    public int BlocksPerRow(int k) => (k + BlockSize - 1) / BlockSize;

    /// <summary>Quantizes the row-major <c>[n, k]</c> <paramref name="weight"/>.</summary>
    public Int4Weight Quantize(ReadOnlySpan<float> weight, int n, int k)
    {
        if ((long)n * k != weight.Length)
        {
            throw new ArgumentException($"weight has {weight.Length} elements, not {n} x {k}", nameof(weight));
        }

        var blocks = BlocksPerRow(k);
        var blob = BlockSize / 2;
        var packed = new byte[(long)n * blocks * blob];
        var scales = new float[(long)n * blocks];
        var zeroBytesPerRow = (blocks + 1) / 2;
        var zeroPoints = ZeroPoints ? new byte[(long)n * zeroBytesPerRow] : null;
        for (var row = 0; row < n; row++)
        {
            var source = weight.Slice(row * k, k);
            for (var b = 0; b < blocks; b++)
            {
                var start = b * BlockSize;
                var block = source.Slice(start, Math.Min(BlockSize, k - start));
                var (scale, zero) = ZeroPoints ? Asymmetric(block) : Symmetric(block);
                var index = ((long)row * blocks) + b;
                scales[index] = scale;
                if (zeroPoints is not null)
                {
                    var at = ((long)row * zeroBytesPerRow) + (b / 2);
                    zeroPoints[at] |= (byte)(b % 2 == 0 ? zero : zero << 4);
                }

                var inverse = scale == 0f ? 0f : 1f / scale;
                var offset = index * blob;
                for (var i = 0; i < BlockSize; i++)
                {
                    // Padding past K quantizes to the zero point, so it dequantizes to exactly 0.
                    var q = i < block.Length ? Math.Clamp((int)MathF.Round(block[i] * inverse, MidpointRounding.AwayFromZero) + zero, 0, 15) : zero;
                    packed[offset + (i / 2)] |= (byte)(i % 2 == 0 ? q : q << 4);
                }
            }
        }

        return new Int4Weight(n, k, BlockSize, packed, scales, zeroPoints);
    }

    /// <summary>The <c>[n, k]</c> weight <paramref name="quantized"/> stands for: (q - zp) * scale, zp 8 where it has no zero points.</summary>
    public static float[] Dequantize(Int4Weight quantized)
    {
        ArgumentNullException.ThrowIfNull(quantized);
        var (n, k, blockSize) = (quantized.N, quantized.K, quantized.BlockSize);
        var blocks = (k + blockSize - 1) / blockSize;
        var zeroBytesPerRow = (blocks + 1) / 2;
        var result = new float[(long)n * k];
        for (var row = 0; row < n; row++)
        {
            for (var col = 0; col < k; col++)
            {
                var b = col / blockSize;
                var i = col % blockSize;
                var index = ((long)row * blocks) + b;
                var q = (quantized.Packed[(index * (blockSize / 2)) + (i / 2)] >> (i % 2 == 0 ? 0 : 4)) & 0xF;
                var zero = quantized.ZeroPoints is { } zp ? (zp[((long)row * zeroBytesPerRow) + (b / 2)] >> (b % 2 == 0 ? 0 : 4)) & 0xF : 8;
                result[((long)row * k) + col] = (q - zero) * quantized.Scales[index];
            }
        }

        return result;
    }

    private static (float Scale, int Zero) Symmetric(ReadOnlySpan<float> block)
    {
        var extreme = 0f;
        foreach (var v in block)
        {
            if (MathF.Abs(v) > MathF.Abs(extreme))
            {
                extreme = v;
            }
        }

        return (extreme / -8f, 8);
    }

    private static (float Scale, int Zero) Asymmetric(ReadOnlySpan<float> block)
    {
        var min = 0f;
        var max = 0f;
        foreach (var v in block)
        {
            min = MathF.Min(min, v);
            max = MathF.Max(max, v);
        }

        var scale = (max - min) / 15f;
        return scale == 0f ? (0f, 8) : (scale, Math.Clamp((int)MathF.Round(-min / scale, MidpointRounding.AwayFromZero), 0, 15));
    }
}
