// Licensed under the MIT License. See LICENSE in the repository root.
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
