// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// The vector loops of <see cref="CpuPagedAttention"/>: fp16/bf16 to fp32 conversion, dot products, axpy, scale and
/// exp. Each uses <see cref="Vector512"/> where the hardware accelerates it, else <see cref="Vector256"/>, else
/// <see cref="Vector128"/> (SSE or NEON), with a scalar tail.
/// </summary>
/// <remarks>
/// fp16 converts with integer vector ops (the exponent rebias by a multiply by 2^112, exact for normals and subnormals,
/// and a select for infinity and NaN): .NET exposes no F16C conversion, and this costs a handful of ALU ops per vector,
/// well below the memory time of the bytes it converts. bf16 is a 16-bit shift.
/// </remarks>
internal static unsafe class KvSimd
{
    /// <summary>2^112 as float: rebiases a half exponent (15) to a float exponent (127).</summary>
    private const float HalfRebias = 5.192296858534828e33f;

    /// <summary>Converts fp16 or bf16 <paramref name="source"/> to <paramref name="destination"/> (one float per 2 bytes).</summary>
    public static void Convert(ReadOnlySpan<byte> source, Span<float> destination, KvStorage storage)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(destination.Length, source.Length / 2, nameof(destination));
        fixed (byte* input = source)
        fixed (float* output = destination)
        {
            Convert(input, output, source.Length / 2, storage);
        }
    }

    /// <summary>The dot product of two spans of equal length.</summary>
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(b.Length, a.Length, nameof(b));
        fixed (float* pa = a)
        fixed (float* pb = b)
        {
            return Dot(pa, pb, a.Length);
        }
    }

    /// <summary>y += w * x over two spans of equal length.</summary>
    public static void Axpy(Span<float> y, float w, ReadOnlySpan<float> x)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(x.Length, y.Length, nameof(x));
        fixed (float* py = y)
        fixed (float* px = x)
        {
            Axpy(py, w, px, y.Length);
        }
    }

    /// <summary>Converts <paramref name="count"/> elements at <paramref name="source"/> of <paramref name="storage"/> (fp16 or bf16) to floats.</summary>
    public static void Convert(byte* source, float* destination, int count, KvStorage storage)
    {
        var input = (ushort*)source;
        var i = 0;
        if (storage == KvStorage.Float16)
        {
            if (Vector512.IsHardwareAccelerated)
            {
                for (; i <= count - 32; i += 32)
                {
                    var bits = Vector512.Load(input + i);
                    HalfToSingle(Vector512.WidenLower(bits)).Store(destination + i);
                    HalfToSingle(Vector512.WidenUpper(bits)).Store(destination + i + 16);
                }
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                for (; i <= count - 16; i += 16)
                {
                    var bits = Vector256.Load(input + i);
                    HalfToSingle(Vector256.WidenLower(bits)).Store(destination + i);
                    HalfToSingle(Vector256.WidenUpper(bits)).Store(destination + i + 8);
                }
            }
            else if (Vector128.IsHardwareAccelerated)
            {
                for (; i <= count - 8; i += 8)
                {
                    var bits = Vector128.Load(input + i);
                    HalfToSingle(Vector128.WidenLower(bits)).Store(destination + i);
                    HalfToSingle(Vector128.WidenUpper(bits)).Store(destination + i + 4);
                }
            }

            for (; i < count; i++)
            {
                destination[i] = (float)((Half*)source)[i];
            }

            return;
        }

        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= count - 32; i += 32)
            {
                var bits = Vector512.Load(input + i);
                Vector512.ShiftLeft(Vector512.WidenLower(bits), 16).AsSingle().Store(destination + i);
                Vector512.ShiftLeft(Vector512.WidenUpper(bits), 16).AsSingle().Store(destination + i + 16);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= count - 16; i += 16)
            {
                var bits = Vector256.Load(input + i);
                Vector256.ShiftLeft(Vector256.WidenLower(bits), 16).AsSingle().Store(destination + i);
                Vector256.ShiftLeft(Vector256.WidenUpper(bits), 16).AsSingle().Store(destination + i + 8);
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            for (; i <= count - 8; i += 8)
            {
                var bits = Vector128.Load(input + i);
                Vector128.ShiftLeft(Vector128.WidenLower(bits), 16).AsSingle().Store(destination + i);
                Vector128.ShiftLeft(Vector128.WidenUpper(bits), 16).AsSingle().Store(destination + i + 4);
            }
        }

        for (; i < count; i++)
        {
            destination[i] = KvConvert.FromBFloat16(input[i]);
        }
    }

    /// <summary>The dot product of <paramref name="count"/> floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot(float* a, float* b, int count)
    {
        var i = 0;
        var sum = 0f;
        if (Vector512.IsHardwareAccelerated && count >= 16)
        {
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            for (; i <= count - 32; i += 32)
            {
                acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
                acc1 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 16), Vector512.Load(b + i + 16), acc1);
            }

            if (i <= count - 16)
            {
                acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
                i += 16;
            }

            sum = Vector512.Sum(acc0 + acc1);
        }
        else if (Vector256.IsHardwareAccelerated && count >= 8)
        {
            var acc0 = Vector256<float>.Zero;
            var acc1 = Vector256<float>.Zero;
            for (; i <= count - 16; i += 16)
            {
                acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc0);
                acc1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), acc1);
            }

            if (i <= count - 8)
            {
                acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc0);
                i += 8;
            }

            sum = Vector256.Sum(acc0 + acc1);
        }
        else if (Vector128.IsHardwareAccelerated && count >= 4)
        {
            var acc = Vector128<float>.Zero;
            for (; i <= count - 4; i += 4)
            {
                acc += Vector128.Load(a + i) * Vector128.Load(b + i);
            }

            sum = Vector128.Sum(acc);
        }

        for (; i < count; i++)
        {
            sum += a[i] * b[i];
        }

        return sum;
    }

    /// <summary>y += w * x over <paramref name="count"/> floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Axpy(float* y, float w, float* x, int count)
    {
        var i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var weight = Vector512.Create(w);
            for (; i <= count - 16; i += 16)
            {
                Vector512.FusedMultiplyAdd(Vector512.Load(x + i), weight, Vector512.Load(y + i)).Store(y + i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var weight = Vector256.Create(w);
            for (; i <= count - 8; i += 8)
            {
                Vector256.FusedMultiplyAdd(Vector256.Load(x + i), weight, Vector256.Load(y + i)).Store(y + i);
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            var weight = Vector128.Create(w);
            for (; i <= count - 4; i += 4)
            {
                (Vector128.Load(y + i) + (Vector128.Load(x + i) * weight)).Store(y + i);
            }
        }

        for (; i < count; i++)
        {
            y[i] += w * x[i];
        }
    }

    /// <summary>Whether <see cref="ScoresTransposed16"/> runs on this machine for <paramref name="blockSize"/>.</summary>
    public static bool CanScoreTransposed16(int blockSize) => Avx512F.IsSupported && Vector512.IsHardwareAccelerated && blockSize % 16 == 0;

    /// <summary>
    /// <see cref="ScoresTransposed"/> for up to four query vectors straight from a 16-bit (fp16 or bf16) transposed key
    /// block: each 16-position row of a key dimension is loaded, widened and converted in registers and used at once,
    /// with no fp32 copy of the block in between (decode, where a KV head's group has at most four query heads).
    /// Needs <see cref="CanScoreTransposed16"/>.
    /// </summary>
    public static void ScoresTransposed16(byte* keys, KvStorage storage, int blockSize, int keyWidth, float* queries, int vectors, float* scores, int rows)
    {
        var q0 = queries;
        var q1 = vectors > 1 ? q0 + keyWidth : q0;
        var q2 = vectors > 2 ? q1 + keyWidth : q1;
        var q3 = vectors > 3 ? q2 + keyWidth : q2;
        var half = storage == KvStorage.Float16;
        for (var c = 0; c < rows; c += 16)
        {
            var a0 = Vector512<float>.Zero;
            var a1 = Vector512<float>.Zero;
            var a2 = Vector512<float>.Zero;
            var a3 = Vector512<float>.Zero;
            var k = (ushort*)keys + c;
            for (var d = 0; d < keyWidth; d++, k += blockSize)
            {
                var bits = Avx512F.ConvertToVector512UInt32(Vector256.Load(k));
                var key = half ? HalfToSingle(bits) : Vector512.ShiftLeft(bits, 16).AsSingle();
                a0 = Vector512.FusedMultiplyAdd(Vector512.Create(q0[d]), key, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Create(q1[d]), key, a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Create(q2[d]), key, a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Create(q3[d]), key, a3);
            }

            a0.Store(scores + c);
            if (vectors > 1)
            {
                a1.Store(scores + blockSize + c);
            }

            if (vectors > 2)
            {
                a2.Store(scores + (2L * blockSize) + c);
            }

            if (vectors > 3)
            {
                a3.Store(scores + (3L * blockSize) + c);
            }
        }
    }

    /// <summary>
    /// Scores of <paramref name="vectors"/> query vectors ([vectors, keyWidth]) against the first <paramref name="rows"/>
    /// positions of a transposed key block ([keyWidth, blockSize]) into <paramref name="scores"/> ([vectors, blockSize]);
    /// lanes past <paramref name="rows"/> (up to the vector width) get values that the caller ignores. Four query vectors
    /// share each key load, and each FMA computes a vector of positions at once, so there are no horizontal sums.
    /// </summary>
    public static void ScoresTransposed(float* keys, int blockSize, int keyWidth, float* queries, int vectors, float* scores, int rows)
    {
        var c = 0;
        if (Vector512.IsHardwareAccelerated && blockSize % 16 == 0)
        {
            for (; c < rows; c += 16)
            {
                var v = 0;
                for (; v + 4 <= vectors; v += 4)
                {
                    var q0 = queries + ((long)v * keyWidth);
                    var q1 = q0 + keyWidth;
                    var q2 = q1 + keyWidth;
                    var q3 = q2 + keyWidth;
                    var a0 = Vector512<float>.Zero;
                    var a1 = Vector512<float>.Zero;
                    var a2 = Vector512<float>.Zero;
                    var a3 = Vector512<float>.Zero;
                    var k = keys + c;
                    for (var d = 0; d < keyWidth; d++, k += blockSize)
                    {
                        var key = Vector512.Load(k);
                        a0 = Vector512.FusedMultiplyAdd(Vector512.Create(q0[d]), key, a0);
                        a1 = Vector512.FusedMultiplyAdd(Vector512.Create(q1[d]), key, a1);
                        a2 = Vector512.FusedMultiplyAdd(Vector512.Create(q2[d]), key, a2);
                        a3 = Vector512.FusedMultiplyAdd(Vector512.Create(q3[d]), key, a3);
                    }

                    a0.Store(scores + ((long)v * blockSize) + c);
                    a1.Store(scores + ((long)(v + 1) * blockSize) + c);
                    a2.Store(scores + ((long)(v + 2) * blockSize) + c);
                    a3.Store(scores + ((long)(v + 3) * blockSize) + c);
                }

                for (; v < vectors; v++)
                {
                    var q0 = queries + ((long)v * keyWidth);
                    var a0 = Vector512<float>.Zero;
                    var k = keys + c;
                    for (var d = 0; d < keyWidth; d++, k += blockSize)
                    {
                        a0 = Vector512.FusedMultiplyAdd(Vector512.Create(q0[d]), Vector512.Load(k), a0);
                    }

                    a0.Store(scores + ((long)v * blockSize) + c);
                }
            }

            return;
        }

        if (Vector256.IsHardwareAccelerated && blockSize % 8 == 0)
        {
            for (; c < rows; c += 8)
            {
                var v = 0;
                for (; v + 4 <= vectors; v += 4)
                {
                    var q0 = queries + ((long)v * keyWidth);
                    var q1 = q0 + keyWidth;
                    var q2 = q1 + keyWidth;
                    var q3 = q2 + keyWidth;
                    var a0 = Vector256<float>.Zero;
                    var a1 = Vector256<float>.Zero;
                    var a2 = Vector256<float>.Zero;
                    var a3 = Vector256<float>.Zero;
                    var k = keys + c;
                    for (var d = 0; d < keyWidth; d++, k += blockSize)
                    {
                        var key = Vector256.Load(k);
                        a0 = Vector256.FusedMultiplyAdd(Vector256.Create(q0[d]), key, a0);
                        a1 = Vector256.FusedMultiplyAdd(Vector256.Create(q1[d]), key, a1);
                        a2 = Vector256.FusedMultiplyAdd(Vector256.Create(q2[d]), key, a2);
                        a3 = Vector256.FusedMultiplyAdd(Vector256.Create(q3[d]), key, a3);
                    }

                    a0.Store(scores + ((long)v * blockSize) + c);
                    a1.Store(scores + ((long)(v + 1) * blockSize) + c);
                    a2.Store(scores + ((long)(v + 2) * blockSize) + c);
                    a3.Store(scores + ((long)(v + 3) * blockSize) + c);
                }

                for (; v < vectors; v++)
                {
                    var q0 = queries + ((long)v * keyWidth);
                    var a0 = Vector256<float>.Zero;
                    var k = keys + c;
                    for (var d = 0; d < keyWidth; d++, k += blockSize)
                    {
                        a0 = Vector256.FusedMultiplyAdd(Vector256.Create(q0[d]), Vector256.Load(k), a0);
                    }

                    a0.Store(scores + ((long)v * blockSize) + c);
                }
            }

            return;
        }

        for (var v = 0; v < vectors; v++)
        {
            var q0 = queries + ((long)v * keyWidth);
            var row = scores + ((long)v * blockSize);
            for (var j = 0; j < rows; j++)
            {
                var sum = 0f;
                for (var d = 0; d < keyWidth; d++)
                {
                    sum += q0[d] * keys[((long)d * blockSize) + j];
                }

                row[j] = sum;
            }
        }
    }

    /// <summary>
    /// acc += sum over j &lt; <paramref name="count"/> of weights[j] * values[j * stride], over <paramref name="width"/> floats:
    /// each chunk of the accumulator is loaded and stored once per block, not once per row.
    /// </summary>
    public static void AccumulateRows(float* accumulator, float* weights, float* values, int count, int stride, int width)
    {
        var d = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; d <= width - 16; d += 16)
            {
                var a = Vector512.Load(accumulator + d);
                var value = values + d;
                for (var j = 0; j < count; j++, value += stride)
                {
                    a = Vector512.FusedMultiplyAdd(Vector512.Create(weights[j]), Vector512.Load(value), a);
                }

                a.Store(accumulator + d);
            }
        }

        if (Vector256.IsHardwareAccelerated)
        {
            for (; d <= width - 8; d += 8)
            {
                var a = Vector256.Load(accumulator + d);
                var value = values + d;
                for (var j = 0; j < count; j++, value += stride)
                {
                    a = Vector256.FusedMultiplyAdd(Vector256.Create(weights[j]), Vector256.Load(value), a);
                }

                a.Store(accumulator + d);
            }
        }

        for (; d < width; d++)
        {
            var a = accumulator[d];
            for (var j = 0; j < count; j++)
            {
                a += weights[j] * values[((long)j * stride) + d];
            }

            accumulator[d] = a;
        }
    }

    /// <summary>y *= w over <paramref name="count"/> floats.</summary>
    public static void Scale(float* y, float w, int count)
    {
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var weight = Vector256.Create(w);
            for (; i <= count - 8; i += 8)
            {
                (Vector256.Load(y + i) * weight).Store(y + i);
            }
        }

        for (; i < count; i++)
        {
            y[i] *= w;
        }
    }

    /// <summary>s[i] = exp(s[i] - max) over <paramref name="count"/> floats; returns their sum.</summary>
    public static float ExpSubtract(float* s, int count, float max)
    {
        var i = 0;
        var sum = 0f;
        if (Vector512.IsHardwareAccelerated && count >= 16)
        {
            var m = Vector512.Create(max);
            var total = Vector512<float>.Zero;
            for (; i <= count - 16; i += 16)
            {
                var e = Vector512.Exp(Vector512.Load(s + i) - m);
                e.Store(s + i);
                total += e;
            }

            sum = Vector512.Sum(total);
        }
        else if (Vector256.IsHardwareAccelerated && count >= 8)
        {
            var m = Vector256.Create(max);
            var total = Vector256<float>.Zero;
            for (; i <= count - 8; i += 8)
            {
                var e = Vector256.Exp(Vector256.Load(s + i) - m);
                e.Store(s + i);
                total += e;
            }

            sum = Vector256.Sum(total);
        }

        for (; i < count; i++)
        {
            var e = MathF.Exp(s[i] - max);
            s[i] = e;
            sum += e;
        }

        return sum;
    }

    /// <summary>The largest of <paramref name="count"/> floats (-infinity when none).</summary>
    public static float Max(float* s, int count)
    {
        var max = float.NegativeInfinity;
        for (var i = 0; i < count; i++)
        {
            max = MathF.Max(max, s[i]);
        }

        return max;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> HalfToSingle(Vector512<uint> x)
    {
        var sign = Vector512.ShiftLeft(x & Vector512.Create(0x8000u), 16);
        var magnitude = x & Vector512.Create(0x7FFFu);
        var shifted = Vector512.ShiftLeft(magnitude, 13);
        var finite = (shifted.AsSingle() * Vector512.Create(HalfRebias)).AsUInt32();
        var special = shifted | Vector512.Create(0x7F80_0000u);
        var isSpecial = Vector512.GreaterThanOrEqual(magnitude, Vector512.Create(0x7C00u));
        return (Vector512.ConditionalSelect(isSpecial, special, finite) | sign).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> HalfToSingle(Vector256<uint> x)
    {
        var sign = Vector256.ShiftLeft(x & Vector256.Create(0x8000u), 16);
        var magnitude = x & Vector256.Create(0x7FFFu);
        var shifted = Vector256.ShiftLeft(magnitude, 13);
        var finite = (shifted.AsSingle() * Vector256.Create(HalfRebias)).AsUInt32();
        var special = shifted | Vector256.Create(0x7F80_0000u);
        var isSpecial = Vector256.GreaterThanOrEqual(magnitude, Vector256.Create(0x7C00u));
        return (Vector256.ConditionalSelect(isSpecial, special, finite) | sign).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> HalfToSingle(Vector128<uint> x)
    {
        var sign = Vector128.ShiftLeft(x & Vector128.Create(0x8000u), 16);
        var magnitude = x & Vector128.Create(0x7FFFu);
        var shifted = Vector128.ShiftLeft(magnitude, 13);
        var finite = (shifted.AsSingle() * Vector128.Create(HalfRebias)).AsUInt32();
        var special = shifted | Vector128.Create(0x7F80_0000u);
        var isSpecial = Vector128.GreaterThanOrEqual(magnitude, Vector128.Create(0x7C00u));
        return (Vector128.ConditionalSelect(isSpecial, special, finite) | sign).AsSingle();
    }
}
