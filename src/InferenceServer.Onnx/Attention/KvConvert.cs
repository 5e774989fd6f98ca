// Licensed under the MIT License. See LICENSE in the repository root.
using System.Numerics;
using System.Runtime.CompilerServices;

namespace InferenceServer.Onnx.Attention;

/// <summary>Scalar conversions between <see cref="float"/> and the 16-bit KV storage types.</summary>
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
        switch (storage)
        {
            case KvStorage.Float32:
                source.CopyTo(new Span<float>(destination, source.Length));
                break;
            case KvStorage.Float16:
                var half = (Half*)destination;
                for (var i = 0; i < source.Length; i++)
                {
                    half[i] = (Half)source[i];
                }

                break;
            default:
                var bf16 = (ushort*)destination;
                for (var i = 0; i < source.Length; i++)
                {
                    bf16[i] = ToBFloat16(source[i]);
                }

                break;
        }
    }

    /// <summary>
    /// Converts <paramref name="source"/> into every <paramref name="stride"/>-th element at <paramref name="destination"/>
    /// (one column of a transposed key block).
    /// </summary>
    public static unsafe void StoreStrided(ReadOnlySpan<float> source, byte* destination, int stride, KvStorage storage)
    {
        switch (storage)
        {
            case KvStorage.Float32:
                var single = (float*)destination;
                for (var i = 0; i < source.Length; i++)
                {
                    single[(long)i * stride] = source[i];
                }

                break;
            case KvStorage.Float16:
                var half = (Half*)destination;
                for (var i = 0; i < source.Length; i++)
                {
                    half[(long)i * stride] = (Half)source[i];
                }

                break;
            default:
                var bf16 = (ushort*)destination;
                for (var i = 0; i < source.Length; i++)
                {
                    bf16[(long)i * stride] = ToBFloat16(source[i]);
                }

                break;
        }
    }
}
