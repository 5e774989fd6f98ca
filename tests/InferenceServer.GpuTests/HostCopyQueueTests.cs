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
/// took against how long the copies took (and the same bytes as 64 calls of 16 MiB), and checks the bytes arrived.
/// Written 2026-12-08, not yet run.
/// </summary>
public sealed unsafe class HostCopyQueueTests(ITestOutputHelper output)
{
    private const long PieceBytes = 512 * 1024;
    private const int Pieces = 2048;
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
                output.WriteLine(Describe("2,048 x 512 KiB", small));
                output.WriteLine(Describe("64 x 16 MiB", large));
            }
            finally
            {
                CudaRuntime.UnregisterHost((IntPtr)host);
            }

            // The bytes arrived: a page from the start, the middle and the end of the last copy.
            var back = new byte[4096];
            foreach (var offset in new[] { 0L, Bytes / 2, Bytes - 4096 })
            {
                fixed (byte* b = back)
                {
                    CudaRuntime.CopyToHost((IntPtr)b, device + (nint)offset, back.Length);
                }

                Assert.Equal((byte)(offset / 4096 % 251), back[0]);
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

    private static string Describe(string what, (double Calls, double Done) time) =>
        FormattableString.Invariant($"{what} host to device: the calls returned after {time.Calls:F2} ms, the copies finished after {time.Done:F2} ms ({Bytes / time.Done / 1e6:F1} GB/s); the scheduler thread would sit in the calls for {time.Calls / time.Done:P0} of the copy");
}
