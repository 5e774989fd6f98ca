// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using System.Runtime.InteropServices;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.GpuTests;

/// <summary>
/// ADR 0009's lead for the host tier's concurrency-4 gap, measured without a model: the paged CUDA runner queues a
/// returning 8B history (8,192 tokens, 32 blocks of 256 tokens, 64 layer pools) as 2,048 <c>cudaMemcpyAsync</c> calls of
/// 512 KiB from page-locked memory on a non-blocking stream. If the stream's queue of pending operations is shorter than
/// that, the calls block the scheduler thread until copies have run. This queues exactly that, prints how long the calls
/// took against how long the copies took (and the same bytes as 64 calls of 16 MiB, and as the 32 pitched copies, one per
/// block, that the runner queues since 2026-12-08), and checks the bytes arrived. Written 2026-12-08, not yet run.
/// </summary>
public sealed unsafe class HostCopyQueueTests(ITestOutputHelper output)
{
    private const long PieceBytes = 512 * 1024;
    private const int Pools = 64;
    private const int Blocks = 32;
    private const int Pieces = Pools * Blocks;
    private const long Bytes = PieceBytes * Pieces;

    [Fact]
    public void AHistorysCopies_QueueWithoutWaitingForThemToRun_OrSayHowLongTheCallsBlock()
    {
        if (GpuFixtures.CudaUnavailableReason is { } reason)
        {
            Assert.Skip(reason);
        }

        var host = (byte*)NativeMemory.AlignedAlloc((nuint)Bytes, 4096);
        var device = CudaRuntime.AllocateZeroed(0, Bytes);
        var stream = CudaRuntime.CreateNonBlockingStream(0);
        try
        {
            for (long i = 0; i < Bytes; i += 4096)
            {
                host[i] = (byte)(i / 4096 % 251);
            }

            Assert.True(CudaRuntime.RegisterHost((IntPtr)host, Bytes), "cudaHostRegister refused 1 GiB");
            try
            {
                // Once to warm the link and the driver, then timed: 2,048 calls as the runner makes them, 64 larger ones.
                Queue(host, device, stream, PieceBytes);
                var small = Queue(host, device, stream, PieceBytes);
                var large = Queue(host, device, stream, Bytes / 64);
                var pitched = QueuePitched(host, device, stream, toDevice: true);
                output.WriteLine(Describe("2,048 x 512 KiB", small));
                output.WriteLine(Describe("64 x 16 MiB", large));
                output.WriteLine(Describe("32 pitched copies of 64 x 512 KiB (the runner since 2026-12-08)", pitched));

                // The other way (a demotion or a swap out), into a second host buffer so the bytes above stay as sent.
                var hostBack = (byte*)NativeMemory.AlignedAlloc((nuint)Bytes, 4096);
                try
                {
                    Assert.True(CudaRuntime.RegisterHost((IntPtr)hostBack, Bytes), "cudaHostRegister refused the second 1 GiB");
                    try
                    {
                        output.WriteLine(Describe("32 pitched copies of 64 x 512 KiB, device to host", QueuePitched(hostBack, device, stream, toDevice: false), "device to host"));
                        Assert.Equal(0, new ReadOnlySpan<byte>(host, 1 << 20).SequenceCompareTo(new ReadOnlySpan<byte>(hostBack, 1 << 20)));
                        Assert.Equal(host[Bytes - 4096], hostBack[Bytes - 4096]);
                    }
                    finally
                    {
                        CudaRuntime.UnregisterHost((IntPtr)hostBack);
                    }
                }
                finally
                {
                    NativeMemory.AlignedFree(hostBack);
                }
            }
            finally
            {
                CudaRuntime.UnregisterHost((IntPtr)host);
            }

            // The bytes arrived where the pitched copies (the last) put them: block b of pool p is the host's bytes at
            // b x 32 MiB + p x 512 KiB, on the device at p x 16 MiB + b x 512 KiB.
            var back = new byte[4096];
            foreach (var (pool, block) in new[] { (0, 0), (1, 0), (0, 1), (37, 21), (Pools - 1, Blocks - 1) })
            {
                fixed (byte* b = back)
                {
                    CudaRuntime.CopyToHost((IntPtr)b, device + (nint)((pool * Blocks * PieceBytes) + (block * PieceBytes)), back.Length);
                }

                var hostOffset = (block * Pools * PieceBytes) + (pool * PieceBytes);
                Assert.Equal((byte)(hostOffset / 4096 % 251), back[0]);
            }
        }
        finally
        {
            CudaRuntime.DestroyStream(stream);
            CudaRuntime.Free(device);
            NativeMemory.AlignedFree(host);
        }
    }

    /// <summary>Queues <see cref="Bytes"/> host to device in pieces of <paramref name="piece"/>; returns the calls' time and the copies' time, in ms.</summary>
    private static (double Calls, double Done) Queue(byte* host, IntPtr device, IntPtr stream, long piece)
    {
        var started = Stopwatch.GetTimestamp();
        for (long offset = 0; offset < Bytes; offset += piece)
        {
            CudaRuntime.CopyAsync(device + (nint)offset, (IntPtr)(host + offset), piece, toDevice: true, stream);
        }

        var queued = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        CudaRuntime.SynchronizeStream(stream);
        return (queued, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    /// <summary>
    /// Queues the same bytes as the runner does since 2026-12-08: one pitched copy per block, its 64 pools' runs back to
    /// back on the host and one pool (32 blocks) apart on the device.
    /// </summary>
    private static (double Calls, double Done) QueuePitched(byte* host, IntPtr device, IntPtr stream, bool toDevice)
    {
        var started = Stopwatch.GetTimestamp();
        for (var block = 0; block < Blocks; block++)
        {
            var onDevice = device + (nint)(block * PieceBytes);
            var onHost = (IntPtr)(host + (block * Pools * PieceBytes));
            if (toDevice)
            {
                CudaRuntime.Copy2DAsync(onDevice, Blocks * PieceBytes, onHost, PieceBytes, PieceBytes, Pools, toDevice: true, stream);
            }
            else
            {
                CudaRuntime.Copy2DAsync(onHost, PieceBytes, onDevice, Blocks * PieceBytes, PieceBytes, Pools, toDevice: false, stream);
            }
        }

        var queued = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        CudaRuntime.SynchronizeStream(stream);
        return (queued, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    private static string Describe(string what, (double Calls, double Done) time, string direction = "host to device") =>
        FormattableString.Invariant($"{what} {direction}: the calls returned after {time.Calls:F2} ms, the copies finished after {time.Done:F2} ms ({Bytes / time.Done / 1e6:F1} GB/s); the scheduler thread would sit in the calls for {time.Calls / time.Done:P0} of the copy");
}
