// Licensed under the MIT License. See LICENSE in the repository root.
using System.Numerics;
using System.Runtime.CompilerServices;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// Conversions between <see cref="float"/> and the 16-bit KV storage types on the way into the pools: scalar, and
/// vectorized (<see cref="Narrow"/>) with the scalar ones' bits; the non-finite checks that
/// <see cref="HostKvPool.MayHoldNonFiniteHalf"/> rests on. The way out (widening in the kernel) is <see cref="KvSimd"/>'s.
/// </summary>
internal static class KvConvert
{
    /// <summary>The byte size of one element of <paramref name="storage"/>.</summary>
    public static int ElementSize(KvStorage storage) => storage switch
    {
        KvStorage.Float32 => 4,
        KvStorage.Float16 or KvStorage.BFloat16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(storage), storage, "Unknown KV storage type."),
    };

    /// <summary>bfloat16 bits of <paramref name="value"/>, rounded to nearest even (NaN stays a quiet NaN).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort ToBFloat16(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFF_FFFFu) > 0x7F80_0000u)
        {
            return (ushort)((bits >> 16) | 0x0040u);
        }

        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }

    /// <summary>The float that bfloat16 bits <paramref name="bits"/> stand for (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float FromBFloat16(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>The smallest float magnitude that fp16 rounds to infinity (65504 is its largest finite value).</summary>
    private const float HalfOverflow = 65520f;

    /// <summary>The fp16 exponent bits; all set is infinity or NaN.</summary>
    private const ushort HalfExponent = 0x7C00;

    /// <summary>Whether any of <paramref name="values"/> becomes infinity or NaN as fp16 (NaN, infinite, or 65520 or more in magnitude).</summary>
    public static bool AnyNonFiniteAsHalf(ReadOnlySpan<float> values)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var limit = new Vector<float>(HalfOverflow);
            for (; i <= values.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                // A NaN compares false, so it fails "less than" as an overflow does.
                if (!Vector.LessThanAll(Vector.Abs(new Vector<float>(values[i..])), limit))
                {
                    return true;
                }
            }
        }

        for (; i < values.Length; i++)
        {
            if (!(MathF.Abs(values[i]) < HalfOverflow))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether any of the fp16 <paramref name="bits"/> is infinity or NaN.</summary>
    public static bool AnyNonFiniteHalf(ReadOnlySpan<ushort> bits)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var exponent = new Vector<ushort>(HalfExponent);
            for (; i <= bits.Length - Vector<ushort>.Count; i += Vector<ushort>.Count)
            {
                if (Vector.EqualsAny(new Vector<ushort>(bits[i..]) & exponent, exponent))
                {
                    return true;
                }
            }
        }

        for (; i < bits.Length; i++)
        {
            if ((bits[i] & HalfExponent) == HalfExponent)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Converts <paramref name="source"/> into <paramref name="destination"/> in <paramref name="storage"/> format.</summary>
    public static unsafe void Store(ReadOnlySpan<float> source, byte* destination, KvStorage storage)
    {
        if (storage == KvStorage.Float32)
        {
            source.CopyTo(new Span<float>(destination, source.Length));
        }
        else
        {
            Narrow(source, new Span<ushort>(destination, source.Length), storage);
        }
    }

    /// <summary>
    /// Converts <paramref name="source"/> into every <paramref name="stride"/>-th element at <paramref name="destination"/>
    /// (one column of a transposed key block).
    /// </summary>
    public static unsafe void StoreStrided(ReadOnlySpan<float> source, byte* destination, int stride, KvStorage storage)
    {
        if (storage == KvStorage.Float32)
        {
            var single = (float*)destination;
            for (var i = 0; i < source.Length; i++)
            {
                single[(long)i * stride] = source[i];
            }

            return;
        }

        // Narrowed a chunk at a time with the vector conversion, then scattered.
        Span<ushort> chunk = stackalloc ushort[256];
        var bits = (ushort*)destination;
        for (var start = 0; start < source.Length; start += chunk.Length)
        {
            var part = source.Slice(start, Math.Min(chunk.Length, source.Length - start));
            Narrow(part, chunk, storage);
            for (var i = 0; i < part.Length; i++)
            {
                bits[(long)(start + i) * stride] = chunk[i];
            }
        }
    }

    /// <summary>
    /// fp16 (<paramref name="storage"/> <see cref="KvStorage.Float16"/>) or bf16 bits of every value of
    /// <paramref name="source"/>, rounded to nearest even as the scalar conversions round (<c>(Half)x</c>,
    /// <see cref="ToBFloat16(float)"/>): the same bits for every number; a NaN stays a NaN.
    /// </summary>
    public static void Narrow(ReadOnlySpan<float> source, Span<ushort> destination, KvStorage storage)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(destination.Length, source.Length, nameof(destination));
        var i = 0;
        var width = Vector<uint>.Count;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= source.Length - (2 * width); i += 2 * width)
            {
                var low = Vector.AsVectorUInt32(new Vector<float>(source[i..]));
                var high = Vector.AsVectorUInt32(new Vector<float>(source[(i + width)..]));
                var narrowed = storage == KvStorage.Float16
                    ? Vector.Narrow(HalfBits(low), HalfBits(high))
                    : Vector.Narrow(BFloat16Bits(low), BFloat16Bits(high));
                narrowed.CopyTo(destination[i..]);
            }
        }

        for (; i < source.Length; i++)
        {
            destination[i] = storage == KvStorage.Float16 ? BitConverter.HalfToUInt16Bits((Half)source[i]) : ToBFloat16(source[i]);
        }
    }

    /// <summary>
    /// fp16 bits (in the low 16 bits of each lane) of floats, rounded to nearest even: magnitudes of 65520 and more become
    /// infinity (the rounding carries into the exponent), NaN a quiet NaN, and magnitudes below fp16's smallest normal
    /// become subnormals by one float add that lets the FPU round at the subnormal's last bit.
    /// </summary>
    private static Vector<uint> HalfBits(Vector<uint> bits)
    {
        var sign = bits & new Vector<uint>(0x8000_0000u);
        var magnitude = bits ^ sign;

        // Normal halves: rebias the exponent, round to nearest even at bit 13, keep bits 13 and up.
        var odd = Vector.ShiftRightLogical(magnitude, 13) & Vector<uint>.One;
        var normal = Vector.ShiftRightLogical(magnitude + new Vector<uint>(unchecked((uint)((15 - 127) << 23)) + 0xFFFu) + odd, 13);

        // Subnormal halves (and zero): adding 0.5 puts the value's bits where a half subnormal's are, rounded by the FPU.
        var subnormal = Vector.AsVectorUInt32(Vector.AsVectorSingle(magnitude) + new Vector<float>(0.5f)) - new Vector<uint>(126u << 23);

        var finite = Vector.ConditionalSelect(Vector.LessThan(magnitude, new Vector<uint>(113u << 23)), subnormal, normal);
        var special = Vector.ConditionalSelect(Vector.GreaterThan(magnitude, new Vector<uint>(0x7F80_0000u)), new Vector<uint>(0x7E00u), new Vector<uint>(0x7C00u));
        var result = Vector.ConditionalSelect(Vector.GreaterThanOrEqual(magnitude, new Vector<uint>(0x4780_0000u)), special, finite);
        return result | Vector.ShiftRightLogical(sign, 16);
    }

    /// <summary>bf16 bits (in the low 16 bits of each lane) of floats, as <see cref="ToBFloat16(float)"/> rounds them.</summary>
    private static Vector<uint> BFloat16Bits(Vector<uint> bits)
    {
        var rounded = Vector.ShiftRightLogical(bits + new Vector<uint>(0x7FFFu) + (Vector.ShiftRightLogical(bits, 16) & Vector<uint>.One), 16);
        var nan = Vector.GreaterThan(bits & new Vector<uint>(0x7FFF_FFFFu), new Vector<uint>(0x7F80_0000u));
        return Vector.ConditionalSelect(nan, Vector.ShiftRightLogical(bits, 16) | new Vector<uint>(0x0040u), rounded);
    }
}
