// Licensed under the MIT License. See LICENSE in the repository root.
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// The vector loops of <see cref="CpuPagedAttention"/>: fp16/bf16 to fp32 conversion, dot products, axpy, scale and
/// exp. Each uses <see cref="Vector512"/> where the hardware accelerates it, else <see cref="Vector256"/>, else
/// <see cref="Vector128"/> (SSE or NEON), with a scalar tail; <see cref="ScoresTransposed"/> is written once over
/// <see cref="Vector{T}"/> (no public generic vector interface lets one loop serve every explicit width).
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

    /// <summary>Whether <see cref="ScoresTransposed16"/> runs on this machine for <paramref name="blockSize"/> and <paramref name="keyWidth"/>.</summary>
    public static bool CanScoreTransposed16(int blockSize, int keyWidth) => Avx512F.IsSupported && Vector512.IsHardwareAccelerated && blockSize % 16 == 0 && keyWidth % 2 == 0;

    /// <summary>
    /// <see cref="ScoresTransposed"/> for up to four query vectors straight from a 16-bit (fp16 or bf16) transposed key
    /// block: each 16-position row of a key dimension is loaded, widened and converted in registers and used at once,
    /// with no fp32 copy of the block in between (decode, where a KV head's group has at most four query heads). Even and
    /// odd key dimensions accumulate into separate registers, so eight FMA chains, not four, hide the FMA latency.
    /// Needs <see cref="CanScoreTransposed16"/>. <paramref name="finite"/>: fp16 keys hold no infinity or NaN
    /// (<see cref="HostKvPool.MayHoldNonFiniteHalf"/> is false), so the conversion skips their select.
    /// </summary>
    public static void ScoresTransposed16(byte* keys, KvStorage storage, bool finite, int blockSize, int keyWidth, float* queries, int vectors, float* scores, int rows)
    {
        switch (Widening(storage, finite))
        {
            case Widen16.BFloat16:
                ScoresTransposed16<BFloat16Widener>(keys, blockSize, keyWidth, queries, vectors, scores, rows);
                break;
            case Widen16.FiniteHalf:
                ScoresTransposed16<FiniteHalfWidener>(keys, blockSize, keyWidth, queries, vectors, scores, rows);
                break;
            default:
                ScoresTransposed16<HalfWidener>(keys, blockSize, keyWidth, queries, vectors, scores, rows);
                break;
        }
    }

    private static void ScoresTransposed16<TWidener>(byte* keys, int blockSize, int keyWidth, float* queries, int vectors, float* scores, int rows)
        where TWidener : struct, IWidener
    {
        FourRows(queries, keyWidth, vectors, out var q0, out var q1, out var q2, out var q3);
        for (var c = 0; c < rows; c += 16)
        {
            var a0 = Vector512<float>.Zero;
            var a1 = Vector512<float>.Zero;
            var a2 = Vector512<float>.Zero;
            var a3 = Vector512<float>.Zero;
            var b0 = Vector512<float>.Zero;
            var b1 = Vector512<float>.Zero;
            var b2 = Vector512<float>.Zero;
            var b3 = Vector512<float>.Zero;
            var k = (ushort*)keys + c;
            for (var d = 0; d < keyWidth; d += 2, k += 2 * blockSize)
            {
                var even = TWidener.Widen(Vector256.Load(k));
                var odd = TWidener.Widen(Vector256.Load(k + blockSize));
                a0 = Vector512.FusedMultiplyAdd(Vector512.Create(q0[d]), even, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Create(q1[d]), even, a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Create(q2[d]), even, a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Create(q3[d]), even, a3);
                b0 = Vector512.FusedMultiplyAdd(Vector512.Create(q0[d + 1]), odd, b0);
                b1 = Vector512.FusedMultiplyAdd(Vector512.Create(q1[d + 1]), odd, b1);
                b2 = Vector512.FusedMultiplyAdd(Vector512.Create(q2[d + 1]), odd, b2);
                b3 = Vector512.FusedMultiplyAdd(Vector512.Create(q3[d + 1]), odd, b3);
            }

            (a0 + b0).Store(scores + c);
            if (vectors > 1)
            {
                (a1 + b1).Store(scores + blockSize + c);
            }

            if (vectors > 2)
            {
                (a2 + b2).Store(scores + (2L * blockSize) + c);
            }

            if (vectors > 3)
            {
                (a3 + b3).Store(scores + (3L * blockSize) + c);
            }
        }
    }

    /// <summary>Whether <see cref="AccumulateRows16"/> runs on this machine for <paramref name="valueWidth"/>.</summary>
    public static bool CanAccumulateRows16(int valueWidth) => Avx512F.IsSupported && Vector512.IsHardwareAccelerated && valueWidth % 32 == 0;

    /// <summary>
    /// <see cref="AccumulateRows"/> for up to four vectors at once straight from 16-bit (fp16 or bf16) value rows: each
    /// row's 32 values of a chunk are loaded and converted in registers once and used by every vector, with no fp32 copy
    /// of the block; eight accumulators (two chunks of four vectors) hide the FMA latency. Vector v's accumulator is at
    /// <c>accumulators + v * width</c> and its weights at <c>weights + v * weightStride</c>; all take rows [0, count).
    /// Needs <see cref="CanAccumulateRows16"/>; <paramref name="finite"/> as for <see cref="ScoresTransposed16(byte*, KvStorage, bool, int, int, float*, int, float*, int)"/>.
    /// </summary>
    public static void AccumulateRows16(float* accumulators, float* weights, int weightStride, int vectors, byte* values, KvStorage storage, bool finite, int count, int stride, int width)
    {
        switch (Widening(storage, finite))
        {
            case Widen16.BFloat16:
                AccumulateFour<BFloat16Widener>(accumulators, weights, weightStride, vectors, values, count, stride, width);
                break;
            case Widen16.FiniteHalf:
                AccumulateFour<FiniteHalfWidener>(accumulators, weights, weightStride, vectors, values, count, stride, width);
                break;
            default:
                AccumulateFour<HalfWidener>(accumulators, weights, weightStride, vectors, values, count, stride, width);
                break;
        }
    }

    /// <summary>Whether <see cref="AccumulateRowsFour"/> runs on this machine for <paramref name="valueWidth"/>.</summary>
    public static bool CanAccumulateRowsFour(int valueWidth) => Vector512.IsHardwareAccelerated && valueWidth % 32 == 0;

    /// <summary>
    /// <see cref="AccumulateRows16(float*, float*, int, int, byte*, KvStorage, bool, int, int, int)"/> over fp32 value rows
    /// (a block read in place or converted once into scratch): each row's 32-value chunk is loaded once for up to four
    /// vectors instead of once per vector. Needs <see cref="CanAccumulateRowsFour"/>.
    /// </summary>
    public static void AccumulateRowsFour(float* accumulators, float* weights, int weightStride, int vectors, float* values, int count, int stride, int width) =>
        AccumulateFour<SingleLoader>(accumulators, weights, weightStride, vectors, (byte*)values, count, stride, width);

    /// <summary>The loop of <see cref="AccumulateRows16(float*, float*, int, int, byte*, KvStorage, bool, int, int, int)"/> and <see cref="AccumulateRowsFour"/>, over rows read by <typeparamref name="TLoader"/>.</summary>
    private static void AccumulateFour<TLoader>(float* accumulators, float* weights, int weightStride, int vectors, byte* values, int count, int stride, int width)
        where TLoader : struct, IRowLoader
    {
        var rowBytes = (long)stride * TLoader.ElementBytes;
        FourRows(weights, weightStride, vectors, out var w0, out var w1, out var w2, out var w3);
        for (var d = 0; d < width; d += 32)
        {
            FourRows(accumulators + d, width, vectors, out var y0, out var y1, out var y2, out var y3);
            var a0 = Vector512.Load(y0);
            var a1 = Vector512.Load(y1);
            var a2 = Vector512.Load(y2);
            var a3 = Vector512.Load(y3);
            var b0 = Vector512.Load(y0 + 16);
            var b1 = Vector512.Load(y1 + 16);
            var b2 = Vector512.Load(y2 + 16);
            var b3 = Vector512.Load(y3 + 16);
            var row = values + ((long)d * TLoader.ElementBytes);
            for (var j = 0; j < count; j++, row += rowBytes)
            {
                TLoader.Load32(row, out var low, out var high);
                var x0 = Vector512.Create(w0[j]);
                var x1 = Vector512.Create(w1[j]);
                var x2 = Vector512.Create(w2[j]);
                var x3 = Vector512.Create(w3[j]);
                a0 = Vector512.FusedMultiplyAdd(x0, low, a0);
                a1 = Vector512.FusedMultiplyAdd(x1, low, a1);
                a2 = Vector512.FusedMultiplyAdd(x2, low, a2);
                a3 = Vector512.FusedMultiplyAdd(x3, low, a3);
                b0 = Vector512.FusedMultiplyAdd(x0, high, b0);
                b1 = Vector512.FusedMultiplyAdd(x1, high, b1);
                b2 = Vector512.FusedMultiplyAdd(x2, high, b2);
                b3 = Vector512.FusedMultiplyAdd(x3, high, b3);
            }

            // With fewer than four vectors the unused ones alias the last real one (its accumulator and weights), so
            // every store to an aliased address writes the same sums.
            a0.Store(y0);
            b0.Store(y0 + 16);
            a1.Store(y1);
            b1.Store(y1 + 16);
            a2.Store(y2);
            b2.Store(y2 + 16);
            a3.Store(y3);
            b3.Store(y3 + 16);
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
        var width = Vector<float>.Count;
        if (Vector.IsHardwareAccelerated && blockSize % width == 0)
        {
            for (var c = 0; c < rows; c += width)
            {
                var v = 0;
                for (; v + 4 <= vectors; v += 4)
                {
                    var q0 = queries + ((long)v * keyWidth);
                    var q1 = q0 + keyWidth;
                    var q2 = q1 + keyWidth;
                    var q3 = q2 + keyWidth;
                    var a0 = Vector<float>.Zero;
                    var a1 = Vector<float>.Zero;
                    var a2 = Vector<float>.Zero;
                    var a3 = Vector<float>.Zero;
                    var b0 = Vector<float>.Zero;
                    var b1 = Vector<float>.Zero;
                    var b2 = Vector<float>.Zero;
                    var b3 = Vector<float>.Zero;
                    var k = keys + c;
                    var d = 0;

                    // Even and odd key dimensions into separate accumulators: eight FMA chains, enough to keep two FMA
                    // units busy through a four-cycle latency.
                    for (; d + 1 < keyWidth; d += 2, k += 2 * blockSize)
                    {
                        var even = Vector.Load(k);
                        var odd = Vector.Load(k + blockSize);
                        a0 = Vector.FusedMultiplyAdd(new Vector<float>(q0[d]), even, a0);
                        a1 = Vector.FusedMultiplyAdd(new Vector<float>(q1[d]), even, a1);
                        a2 = Vector.FusedMultiplyAdd(new Vector<float>(q2[d]), even, a2);
                        a3 = Vector.FusedMultiplyAdd(new Vector<float>(q3[d]), even, a3);
                        b0 = Vector.FusedMultiplyAdd(new Vector<float>(q0[d + 1]), odd, b0);
                        b1 = Vector.FusedMultiplyAdd(new Vector<float>(q1[d + 1]), odd, b1);
                        b2 = Vector.FusedMultiplyAdd(new Vector<float>(q2[d + 1]), odd, b2);
                        b3 = Vector.FusedMultiplyAdd(new Vector<float>(q3[d + 1]), odd, b3);
                    }

                    if (d < keyWidth)
                    {
                        var key = Vector.Load(k);
                        a0 = Vector.FusedMultiplyAdd(new Vector<float>(q0[d]), key, a0);
                        a1 = Vector.FusedMultiplyAdd(new Vector<float>(q1[d]), key, a1);
                        a2 = Vector.FusedMultiplyAdd(new Vector<float>(q2[d]), key, a2);
                        a3 = Vector.FusedMultiplyAdd(new Vector<float>(q3[d]), key, a3);
                    }

                    (a0 + b0).Store(scores + ((long)v * blockSize) + c);
                    (a1 + b1).Store(scores + ((long)(v + 1) * blockSize) + c);
                    (a2 + b2).Store(scores + ((long)(v + 2) * blockSize) + c);
                    (a3 + b3).Store(scores + ((long)(v + 3) * blockSize) + c);
                }

                for (; v < vectors; v++)
                {
                    var q0 = queries + ((long)v * keyWidth);
                    var a0 = Vector<float>.Zero;
                    var k = keys + c;
                    for (var d = 0; d < keyWidth; d++, k += blockSize)
                    {
                        a0 = Vector.FusedMultiplyAdd(new Vector<float>(q0[d]), Vector.Load(k), a0);
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

    /// <summary>
    /// The first four rows of <paramref name="stride"/> floats at <paramref name="first"/>; rows past
    /// <paramref name="count"/> alias the last real one, so a four-vector loop computes (and stores) its sums again.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FourRows(float* first, int stride, int count, out float* row0, out float* row1, out float* row2, out float* row3)
    {
        row0 = first;
        row1 = count > 1 ? row0 + stride : row0;
        row2 = count > 2 ? row1 + stride : row1;
        row3 = count > 3 ? row2 + stride : row2;
    }

    /// <summary>32 16-bit values at <paramref name="source"/> as floats, widened by <typeparamref name="TWidener"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Widen32<TWidener>(byte* source, out Vector512<float> low, out Vector512<float> high)
        where TWidener : struct, IWidener
    {
        var bits = Vector512.Load((ushort*)source);
        low = TWidener.Widen(bits.GetLower());
        high = TWidener.Widen(bits.GetUpper());
    }

    private static Widen16 Widening(KvStorage storage, bool finite) => storage switch
    {
        KvStorage.BFloat16 => Widen16.BFloat16,
        KvStorage.Float16 => finite ? Widen16.FiniteHalf : Widen16.Half,
        _ => throw new ArgumentOutOfRangeException(nameof(storage), storage, "Only 16-bit storage is widened."),
    };

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

    /// <summary>How sixteen 16-bit KV values become floats.</summary>
    private enum Widen16
    {
        /// <summary>bf16: a 16-bit shift.</summary>
        BFloat16,

        /// <summary>fp16, exact for every value (<see cref="HalfToSingle(Vector512{uint})"/>).</summary>
        Half,

        /// <summary>fp16 known to hold no infinity or NaN (<see cref="FiniteHalfWidener"/>).</summary>
        FiniteHalf,
    }

    /// <summary>Sixteen 16-bit values as floats; a struct type argument, so each kernel is compiled once per conversion with no branch.</summary>
    private interface IWidener
    {
        static abstract Vector512<float> Widen(Vector256<ushort> bits);
    }

    /// <summary>32 consecutive values of a row as two float vectors (a struct type argument, as <see cref="IWidener"/>).</summary>
    private interface IRowLoader
    {
        static abstract int ElementBytes { get; }

        static abstract void Load32(byte* source, out Vector512<float> low, out Vector512<float> high);
    }

    private readonly struct SingleLoader : IRowLoader
    {
        public static int ElementBytes => sizeof(float);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load32(byte* source, out Vector512<float> low, out Vector512<float> high)
        {
            low = Vector512.Load((float*)source);
            high = Vector512.Load((float*)source + 16);
        }
    }

    private readonly struct BFloat16Widener : IWidener, IRowLoader
    {
        public static int ElementBytes => sizeof(ushort);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Widen(Vector256<ushort> bits) => Vector512.ShiftLeft(Avx512F.ConvertToVector512UInt32(bits), 16).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load32(byte* source, out Vector512<float> low, out Vector512<float> high) => Widen32<BFloat16Widener>(source, out low, out high);
    }

    private readonly struct HalfWidener : IWidener, IRowLoader
    {
        public static int ElementBytes => sizeof(ushort);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Widen(Vector256<ushort> bits) => HalfToSingle(Avx512F.ConvertToVector512UInt32(bits));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load32(byte* source, out Vector512<float> low, out Vector512<float> high) => Widen32<HalfWidener>(source, out low, out high);
    }

    /// <summary>
    /// fp16 without infinity or NaN in five operations: the half moved to the top 16 bits and shifted right arithmetically
    /// by 3 puts its sign at bit 31 (the copies in bits 30-28 are masked off) and its exponent and mantissa where a
    /// float's are; a multiply by 2^112 rebiases the exponent (exact, subnormal halves too). An infinity or NaN would come
    /// out as a finite number of 65536 or more, so it is used only where none was stored.
    /// </summary>
    private readonly struct FiniteHalfWidener : IWidener, IRowLoader
    {
        public static int ElementBytes => sizeof(ushort);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load32(byte* source, out Vector512<float> low, out Vector512<float> high) => Widen32<FiniteHalfWidener>(source, out low, out high);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Widen(Vector256<ushort> bits)
        {
            var top = Vector512.ShiftLeft(Avx512F.ConvertToVector512UInt32(bits), 16).AsInt32();
            var placed = Vector512.ShiftRightArithmetic(top, 3) & Vector512.Create(unchecked((int)0x8FFF_E000));
            return placed.AsSingle() * Vector512.Create(HalfRebias);
        }
    }
}
