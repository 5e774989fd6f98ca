// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// STREAM-like host bandwidth on the same worker threads as the kernel: "read" sums a large array with SIMD on all
/// threads (bytes read per second); "copy" copies one large array into another (STREAM's convention: bytes read plus
/// bytes written per second).
/// </summary>
internal sealed unsafe class MemoryBandwidth : IDisposable
{
    private readonly AttentionWorkerPool _workers;
    private readonly long _bytes;
    private readonly byte* _source;
    private readonly byte* _destination;
    private readonly float[] _sums;
    private bool _copy;

    /// <summary>Allocates two arrays of <paramref name="bytes"/> bytes (touched, so the pages are resident).</summary>
    public MemoryBandwidth(int threads, long bytes)
    {
        _bytes = bytes / (threads * 64L) * (threads * 64L);
        _source = (byte*)NativeMemory.AlignedAlloc((nuint)_bytes, 64);
        _destination = (byte*)NativeMemory.AlignedAlloc((nuint)_bytes, 64);
        for (long offset = 0; offset < _bytes; offset += 1L << 30)
        {
            var length = (int)Math.Min(1L << 30, _bytes - offset);
            new Span<byte>(_source + offset, length).Fill(1);
            new Span<byte>(_destination + offset, length).Clear();
        }

        _sums = new float[threads * 16];
        _workers = new AttentionWorkerPool(threads, Run);
    }

    /// <summary>Best of <paramref name="repeats"/> passes of the read kernel, in GB/s (10^9 bytes).</summary>
    public double Read(int repeats)
    {
        _copy = false;
        return Best(repeats, _bytes);
    }

    /// <summary>Best of <paramref name="repeats"/> passes of the copy kernel, in GB/s (read + written).</summary>
    public double Copy(int repeats)
    {
        _copy = true;
        return Best(repeats, 2 * _bytes);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _workers.Dispose();
        NativeMemory.AlignedFree(_source);
        NativeMemory.AlignedFree(_destination);
    }

    private double Best(int repeats, long bytes)
    {
        _workers.Run();
        var best = double.MaxValue;
        for (var i = 0; i < repeats; i++)
        {
            var start = Stopwatch.GetTimestamp();
            _workers.Run();
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }

        return bytes / best / 1e9;
    }

    private void Run(int index)
    {
        var share = _bytes / _workers.Threads;
        var begin = _source + (index * share);
        if (_copy)
        {
            Buffer.MemoryCopy(begin, _destination + (index * share), share, share);
            return;
        }

        var end = (float*)(begin + share);
        var p = (float*)begin;
        var a = Vector256<float>.Zero;
        var b = Vector256<float>.Zero;
        var c = Vector256<float>.Zero;
        var d = Vector256<float>.Zero;
        for (; p + 32 <= end; p += 32)
        {
            a += Vector256.Load(p);
            b += Vector256.Load(p + 8);
            c += Vector256.Load(p + 16);
            d += Vector256.Load(p + 24);
        }

        _sums[index * 16] = Vector256.Sum(a + b + c + d);
    }
}
