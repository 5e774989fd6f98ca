// Licensed under the MIT License. See LICENSE in the repository root.
using System.Reflection;
using System.Runtime.InteropServices;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The few CUDA runtime calls the device KV store needs that ONNX Runtime's C# API does not offer: one allocation per
/// pool, zeroing it once, the device's free memory for sizing the cache, the host KV tier's page-locked block copies, and
/// the stream capture of the local split's decode steps (ADR 0011). The library is the CUDA 13 runtime that
/// ONNX Runtime's CUDA provider itself loads (<c>libcudart.so.13</c>), resolved on first use.
/// </summary>
internal static partial class CudaRuntime
{
    private const string Library = "cudart";
    private const int HostToDevice = 1;
    private const int DeviceToHost = 2;
    private const uint HostRegisterPortable = 1;
    private const uint StreamNonBlocking = 1;
    private const uint EventDisableTiming = 2;
    private const int ErrorNotReady = 600;
    private const int CaptureModeRelaxed = 2;
    private const int AttributeMaxPitch = 11;

    static CudaRuntime() => NativeLibrary.SetDllImportResolver(typeof(CudaRuntime).Assembly, Resolve);

    /// <summary>Allocates <paramref name="bytes"/> on <paramref name="device"/>, zeroed.</summary>
    /// <exception cref="InvalidOperationException">The allocation failed (the message carries CUDA's error code).</exception>
    public static IntPtr AllocateZeroed(int device, long bytes)
    {
        Check(cudaSetDevice(device), "cudaSetDevice");
        Check(cudaMalloc(out var pointer, (nuint)bytes), $"cudaMalloc({bytes} bytes)");
        var status = cudaMemset(pointer, 0, (nuint)bytes);
        if (status != 0)
        {
            _ = cudaFree(pointer);
            Check(status, "cudaMemset");
        }

        Check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
        return pointer;
    }

    /// <summary>
    /// Creates a blocking stream on <paramref name="device"/> (<c>cudaStreamCreate</c>): work on it waits for, and is
    /// waited for by, the legacy default stream, so the synchronous copies of <see cref="CopyToDevice"/> and
    /// <see cref="CopyToHost"/> stay ordered with it.
    /// </summary>
    public static IntPtr CreateStream(int device)
    {
        Check(cudaSetDevice(device), "cudaSetDevice");
        Check(cudaStreamCreate(out var stream), "cudaStreamCreate");
        return stream;
    }

    /// <summary>
    /// Creates a non-blocking stream on <paramref name="device"/> (<c>cudaStreamNonBlocking</c>): its work neither waits for
    /// nor holds up the legacy default stream, so a step's synchronous uploads do not wait for copies queued on it.
    /// </summary>
    public static IntPtr CreateNonBlockingStream(int device)
    {
        Check(cudaSetDevice(device), "cudaSetDevice");
        Check(cudaStreamCreateWithFlags(out var stream, StreamNonBlocking), "cudaStreamCreateWithFlags");
        return stream;
    }

    /// <summary>Records a new event (no timing) after the work queued so far on <paramref name="stream"/>.</summary>
    public static IntPtr RecordEvent(IntPtr stream)
    {
        Check(cudaEventCreateWithFlags(out var cudaEvent, EventDisableTiming), "cudaEventCreateWithFlags");
        var status = cudaEventRecord(cudaEvent, stream);
        if (status != 0)
        {
            _ = cudaEventDestroy(cudaEvent);
            Check(status, "cudaEventRecord");
        }

        return cudaEvent;
    }

    /// <summary>Whether the work before <paramref name="cudaEvent"/> has finished (<c>cudaEventQuery</c>; not-ready is no error).</summary>
    public static bool EventDone(IntPtr cudaEvent)
    {
        var status = cudaEventQuery(cudaEvent);
        if (status == 0)
        {
            return true;
        }

        if (status == ErrorNotReady)
        {
            // Keep the thread's last error clean for ONNX Runtime's kernels (see RegisterHost); a real one still surfaces.
            var last = cudaGetLastError();
            if (last != 0 && last != ErrorNotReady)
            {
                Check(last, "cudaEventQuery");
            }

            return false;
        }

        Check(status, "cudaEventQuery");
        return false;
    }

    /// <summary>Waits until the work before <paramref name="cudaEvent"/> has finished.</summary>
    public static void WaitEvent(IntPtr cudaEvent) => Check(cudaEventSynchronize(cudaEvent), "cudaEventSynchronize");

    /// <summary>Destroys what <see cref="RecordEvent"/> returned.</summary>
    public static void DestroyEvent(IntPtr cudaEvent)
    {
        if (cudaEvent != IntPtr.Zero)
        {
            _ = cudaEventDestroy(cudaEvent);
        }
    }

    /// <summary>Waits until every operation queued on <paramref name="stream"/> has finished.</summary>
    public static void SynchronizeStream(IntPtr stream) => Check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");

    /// <summary>Destroys what <see cref="CreateStream"/> returned.</summary>
    public static void DestroyStream(IntPtr stream)
    {
        if (stream != IntPtr.Zero)
        {
            _ = cudaStreamDestroy(stream);
        }
    }

    /// <summary>Frees what <see cref="AllocateZeroed"/> returned.</summary>
    public static void Free(IntPtr pointer)
    {
        if (pointer != IntPtr.Zero)
        {
            _ = cudaFree(pointer);
        }
    }

    /// <summary>Copies <paramref name="bytes"/> from host <paramref name="source"/> to device <paramref name="destination"/>; returns when done.</summary>
    public static void CopyToDevice(IntPtr destination, IntPtr source, long bytes) =>
        Check(cudaMemcpy(destination, source, (nuint)bytes, HostToDevice), "cudaMemcpy");

    /// <summary>Copies <paramref name="bytes"/> from device <paramref name="source"/> to host <paramref name="destination"/>; returns when done.</summary>
    public static void CopyToHost(IntPtr destination, IntPtr source, long bytes) =>
        Check(cudaMemcpy(destination, source, (nuint)bytes, DeviceToHost), "cudaMemcpy");

    /// <summary>
    /// Queues a copy of <paramref name="bytes"/> on <paramref name="stream"/>, host to device when <paramref name="toDevice"/>
    /// else device to host. Asynchronous only where the host side is page-locked (<see cref="RegisterHost"/>); from
    /// pageable memory the driver stages it and returns when the host bytes are consumed.
    /// </summary>
    public static void CopyAsync(IntPtr destination, IntPtr source, long bytes, bool toDevice, IntPtr stream) =>
        Check(cudaMemcpyAsync(destination, source, (nuint)bytes, toDevice ? HostToDevice : DeviceToHost, stream), "cudaMemcpyAsync");

    /// <summary>
    /// Queues <paramref name="rows"/> copies of <paramref name="rowBytes"/> each on <paramref name="stream"/> as one pitched
    /// copy (<c>cudaMemcpy2DAsync</c>): row r goes from <paramref name="source"/> + r x <paramref name="sourcePitch"/> to
    /// <paramref name="destination"/> + r x <paramref name="destinationPitch"/>, host to device when
    /// <paramref name="toDevice"/> else device to host. Asynchronous where the host side is page-locked, as <see cref="CopyAsync"/>.
    /// </summary>
    public static void Copy2DAsync(IntPtr destination, long destinationPitch, IntPtr source, long sourcePitch, long rowBytes, int rows, bool toDevice, IntPtr stream) =>
        Check(
            cudaMemcpy2DAsync(destination, (nuint)destinationPitch, source, (nuint)sourcePitch, (nuint)rowBytes, (nuint)rows, toDevice ? HostToDevice : DeviceToHost, stream),
            "cudaMemcpy2DAsync");

    /// <summary>The largest pitch a pitched copy on <paramref name="device"/> takes (<c>cudaDevAttrMaxPitch</c>).</summary>
    public static long MaxPitch(int device)
    {
        Check(cudaDeviceGetAttribute(out var pitch, AttributeMaxPitch, device), "cudaDeviceGetAttribute(cudaDevAttrMaxPitch)");
        return pitch;
    }

    /// <summary>
    /// Page-locks <paramref name="bytes"/> of host memory at <paramref name="pointer"/> (<c>cudaHostRegister</c>) so copies
    /// to and from it run at the link's rate without the driver's staging buffer; false (and the memory left pageable)
    /// when the driver refuses.
    /// </summary>
    public static bool RegisterHost(IntPtr pointer, long bytes)
    {
        // Portable: page-locked for every device's context, whichever is current on the calling thread.
        if (cudaHostRegister(pointer, (nuint)bytes, HostRegisterPortable) == 0)
        {
            return true;
        }

        // Clear the thread's last error: ONNX Runtime's CUDA kernels check cudaGetLastError after launching, so a refused
        // registration left there would fail the next step run on this thread.
        _ = cudaGetLastError();
        return false;
    }

    /// <summary>Undoes <see cref="RegisterHost"/>.</summary>
    public static void UnregisterHost(IntPtr pointer)
    {
        if (cudaHostUnregister(pointer) != 0)
        {
            _ = cudaGetLastError();
        }
    }

    /// <summary>
    /// Copies <paramref name="bytes"/> from <paramref name="source"/> on device <paramref name="sourceDevice"/> to
    /// <paramref name="destination"/> on <paramref name="destinationDevice"/> (over NVLink/PCIe peer access where the pair
    /// has it, staged by the driver otherwise); returns when done, so ONNX Runtime's streams on either side see the bytes.
    /// </summary>
    public static void CopyPeer(IntPtr destination, int destinationDevice, IntPtr source, int sourceDevice, long bytes)
    {
        if (bytes <= 0)
        {
            return;
        }

        Check(cudaSetDevice(destinationDevice), "cudaSetDevice");
        Check(cudaMemcpyPeer(destination, destinationDevice, source, sourceDevice, (nuint)bytes), "cudaMemcpyPeer");
        Check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
        Check(cudaSetDevice(sourceDevice), "cudaSetDevice");
        Check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    }

    /// <summary>
    /// Starts capturing the work queued on <paramref name="stream"/> into a CUDA graph (<c>cudaStreamBeginCapture</c>,
    /// relaxed mode: the capturing thread may still allocate, as ONNX Runtime's arena does when it grows, and other
    /// threads are not affected). Nothing queued until <see cref="EndCapture"/> runs.
    /// </summary>
    public static void BeginCapture(IntPtr stream) => Check(cudaStreamBeginCapture(stream, CaptureModeRelaxed), "cudaStreamBeginCapture");

    /// <summary>
    /// Ends the capture <see cref="BeginCapture"/> started on <paramref name="stream"/> and returns the graph made
    /// executable (<c>cudaGraphInstantiateWithFlags</c>; <see cref="DestroyGraph"/> frees it). The stream leaves capture
    /// mode whatever happens.
    /// </summary>
    /// <exception cref="InvalidOperationException">The capture was invalidated (an operation not allowed while capturing) or the graph cannot be instantiated.</exception>
    public static IntPtr EndCapture(IntPtr stream)
    {
        var status = cudaStreamEndCapture(stream, out var graph);
        if (status != 0 || graph == IntPtr.Zero)
        {
            if (graph != IntPtr.Zero)
            {
                _ = cudaGraphDestroy(graph);
            }

            _ = cudaGetLastError();
            throw new InvalidOperationException($"cudaStreamEndCapture failed with CUDA error {status}");
        }

        try
        {
            var instantiated = cudaGraphInstantiateWithFlags(out var executable, graph, 0);
            if (instantiated != 0)
            {
                _ = cudaGetLastError();
                throw new InvalidOperationException($"cudaGraphInstantiateWithFlags failed with CUDA error {instantiated}");
            }

            return executable;
        }
        finally
        {
            _ = cudaGraphDestroy(graph);
        }
    }

    /// <summary>After a capture failed part way: ends it if <paramref name="stream"/> is still capturing and clears the thread's error, so later work runs normally.</summary>
    public static void AbortCapture(IntPtr stream)
    {
        if (cudaStreamIsCapturing(stream, out var capturing) == 0 && capturing != 0)
        {
            _ = cudaStreamEndCapture(stream, out var graph);
            if (graph != IntPtr.Zero)
            {
                _ = cudaGraphDestroy(graph);
            }
        }

        _ = cudaGetLastError();
    }

    /// <summary>Queues executable graph <paramref name="graph"/> on <paramref name="stream"/> (returns at once).</summary>
    public static void LaunchGraph(IntPtr graph, IntPtr stream) => Check(cudaGraphLaunch(graph, stream), "cudaGraphLaunch");

    /// <summary>Frees what <see cref="EndCapture"/> returned.</summary>
    public static void DestroyGraph(IntPtr graph)
    {
        if (graph != IntPtr.Zero)
        {
            _ = cudaGraphExecDestroy(graph);
        }
    }

    /// <summary>CUDA devices this process sees (0 when the runtime library is missing or no device is usable).</summary>
    public static int DeviceCount()
    {
        try
        {
            return cudaGetDeviceCount(out var count) == 0 ? count : 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return 0;
        }
    }

    /// <summary>Free and total bytes of <paramref name="device"/>.</summary>
    public static (long Free, long Total) MemoryInfo(int device)
    {
        Check(cudaSetDevice(device), "cudaSetDevice");
        Check(cudaMemGetInfo(out var free, out var total), "cudaMemGetInfo");
        return ((long)free, (long)total);
    }

    private static void Check(int status, string call)
    {
        if (status != 0)
        {
            throw new InvalidOperationException($"{call} failed with CUDA error {status}");
        }
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name != Library)
        {
            return IntPtr.Zero;
        }

        foreach (var candidate in (string[])["libcudart.so.13", "libcudart.so.12", "libcudart.so"])
        {
            if (NativeLibrary.TryLoad(candidate, assembly, path, out var handle))
            {
                return handle;
            }
        }

        return IntPtr.Zero;
    }

    [LibraryImport(Library)]
    private static partial int cudaSetDevice(int device);

    [LibraryImport(Library)]
    private static partial int cudaMalloc(out IntPtr pointer, nuint size);

    [LibraryImport(Library)]
    private static partial int cudaFree(IntPtr pointer);

    [LibraryImport(Library)]
    private static partial int cudaMemset(IntPtr pointer, int value, nuint count);

    [LibraryImport(Library)]
    private static partial int cudaMemcpy(IntPtr destination, IntPtr source, nuint count, int kind);

    [LibraryImport(Library)]
    private static partial int cudaMemcpyAsync(IntPtr destination, IntPtr source, nuint count, int kind, IntPtr stream);

    [LibraryImport(Library)]
    private static partial int cudaMemcpy2DAsync(IntPtr destination, nuint destinationPitch, IntPtr source, nuint sourcePitch, nuint width, nuint height, int kind, IntPtr stream);

    [LibraryImport(Library)]
    private static partial int cudaDeviceGetAttribute(out int value, int attribute, int device);

    [LibraryImport(Library)]
    private static partial int cudaHostRegister(IntPtr pointer, nuint size, uint flags);

    [LibraryImport(Library)]
    private static partial int cudaHostUnregister(IntPtr pointer);

    [LibraryImport(Library)]
    private static partial int cudaGetLastError();

    [LibraryImport(Library)]
    private static partial int cudaMemcpyPeer(IntPtr destination, int destinationDevice, IntPtr source, int sourceDevice, nuint count);

    [LibraryImport(Library)]
    private static partial int cudaMemGetInfo(out nuint free, out nuint total);

    [LibraryImport(Library)]
    private static partial int cudaDeviceSynchronize();

    [LibraryImport(Library)]
    private static partial int cudaGetDeviceCount(out int count);

    [LibraryImport(Library)]
    private static partial int cudaStreamCreate(out IntPtr stream);

    [LibraryImport(Library)]
    private static partial int cudaStreamSynchronize(IntPtr stream);

    [LibraryImport(Library)]
    private static partial int cudaStreamDestroy(IntPtr stream);

    [LibraryImport(Library)]
    private static partial int cudaStreamCreateWithFlags(out IntPtr stream, uint flags);

    [LibraryImport(Library)]
    private static partial int cudaEventCreateWithFlags(out IntPtr cudaEvent, uint flags);

    [LibraryImport(Library)]
    private static partial int cudaEventRecord(IntPtr cudaEvent, IntPtr stream);

    [LibraryImport(Library)]
    private static partial int cudaEventQuery(IntPtr cudaEvent);

    [LibraryImport(Library)]
    private static partial int cudaEventSynchronize(IntPtr cudaEvent);

    [LibraryImport(Library)]
    private static partial int cudaEventDestroy(IntPtr cudaEvent);

    [LibraryImport(Library)]
    private static partial int cudaStreamBeginCapture(IntPtr stream, int mode);

    [LibraryImport(Library)]
    private static partial int cudaStreamEndCapture(IntPtr stream, out IntPtr graph);

    [LibraryImport(Library)]
    private static partial int cudaStreamIsCapturing(IntPtr stream, out int status);

    [LibraryImport(Library)]
    private static partial int cudaGraphInstantiateWithFlags(out IntPtr executable, IntPtr graph, ulong flags);

    [LibraryImport(Library)]
    private static partial int cudaGraphLaunch(IntPtr executable, IntPtr stream);

    [LibraryImport(Library)]
    private static partial int cudaGraphDestroy(IntPtr graph);

    [LibraryImport(Library)]
    private static partial int cudaGraphExecDestroy(IntPtr executable);
}
