// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// A step input that lives on the device at a fixed address: a pinned host array the step fills, a device allocation of
/// the same capacity it is copied into (<see cref="Upload"/>), and <see cref="OrtValue"/> views of the device memory
/// cached per shape. Binding a view hands ONNX Runtime device memory, so it copies nothing at bind or run time and the
/// binding need not be renewed while the shape holds: a steady decode step uploads its few ints and creates nothing.
/// Growing (doubling) reallocates both sides and drops the views. With device -1 the buffer is the pinned host array
/// itself (ONNX Runtime's CPU memory): <see cref="Upload"/> and <see cref="Download"/> copy nothing, so code written
/// against device buffers runs, and is tested, on the CPU provider. On a device, a host side of
/// <see cref="PageLockBytes"/> or more is also page-locked (<c>cudaHostRegister</c>), so the split runner's q, k, v and
/// attention-output copies run at the link's rate instead of through the driver's staging buffer; where the driver
/// refuses (a page shared with another registered array), the copies stay pageable.
/// </summary>
internal sealed class DeviceTensorBuffer<T> : ITensorViews, IDisposable
    where T : unmanaged
{
    private readonly int _device;
    private readonly OrtMemoryInfo _memory;
    private readonly TensorElementType _type;
    private readonly TensorViews _views = new();
    private readonly Func<long[], long, OrtValue> _create;
    private T[] _host;
    private IntPtr _deviceData;
    private IntPtr _locked;

    /// <summary>Creates the buffer with room for <paramref name="capacity"/> elements on CUDA device <paramref name="device"/> (-1: host memory).</summary>
    public DeviceTensorBuffer(int device, OrtMemoryInfo memory, TensorElementType type, int capacity)
    {
        _device = device;
        _memory = memory;
        _type = type;
        _host = GC.AllocateArray<T>(Math.Max(1, capacity), pinned: true);
        _deviceData = AllocateDevice();
        _create = CreateView;
        LockHost();
    }

    /// <summary>The smallest host side that is page-locked: below it a copy is latency, not bytes.</summary>
    internal const long PageLockBytes = 64 << 10;

    private bool OnHost => _device < 0;

    /// <summary>The CUDA device (-1: host memory).</summary>
    public int Device => _device;

    /// <summary>The device allocation (valid until the next growing <see cref="Reserve"/>).</summary>
    public IntPtr DevicePointer => _deviceData;

    /// <summary>
    /// Copies the first <paramref name="length"/> elements of <paramref name="source"/>, a buffer on another CUDA device,
    /// into this one's device side (which must hold them: <see cref="Reserve"/> first).
    /// </summary>
    public void CopyFromPeer(DeviceTensorBuffer<T> source, int length) =>
        CudaRuntime.CopyPeer(_deviceData, _device, source._deviceData, source._device, (long)length * Marshal.SizeOf<T>());

    /// <summary>The host side's first <paramref name="length"/> elements, after growing to hold them (growing discards the contents).</summary>
    public Span<T> Reserve(int length)
    {
        if (length > _host.Length)
        {
            _views.Clear();
            FreeDevice();
            UnlockHost();
            _host = GC.AllocateArray<T>(Math.Max(length, _host.Length * 2), pinned: true);
            _deviceData = AllocateDevice();
            LockHost();
        }

        return _host.AsSpan(0, length);
    }

    /// <summary>Copies the host side's first <paramref name="length"/> elements to the device.</summary>
    public void Upload(int length) => UploadRange(0, length);

    /// <summary>Copies the host side's elements [<paramref name="offset"/>, <paramref name="offset"/> + <paramref name="length"/>) to the same place of the device side.</summary>
    public void UploadRange(int offset, int length)
    {
        if (length > 0 && !OnHost)
        {
            var size = Marshal.SizeOf<T>();
            CudaRuntime.CopyToDevice(_deviceData + (nint)((long)offset * size), Marshal.UnsafeAddrOfPinnedArrayElement(_host, offset), (long)length * size);
        }
    }

    /// <summary>Copies the device side's first <paramref name="length"/> elements back and returns them (an output buffer).</summary>
    public ReadOnlySpan<T> Download(int length)
    {
        DownloadRange(0, length);
        return _host.AsSpan(0, length);
    }

    /// <summary>Copies the device side's elements [<paramref name="offset"/>, <paramref name="offset"/> + <paramref name="length"/>) to the same place of the host side.</summary>
    public void DownloadRange(int offset, int length)
    {
        if (length > 0 && !OnHost)
        {
            var size = Marshal.SizeOf<T>();
            CudaRuntime.CopyToHost(Marshal.UnsafeAddrOfPinnedArrayElement(_host, offset), _deviceData + (nint)((long)offset * size), (long)length * size);
        }
    }

    /// <summary>The host side's first <paramref name="length"/> elements as they are (what the last <see cref="Download"/> brought back).</summary>
    public ReadOnlySpan<T> Host(int length) => _host.AsSpan(0, length);

    /// <summary>A view of the device memory shaped <c>[rows]</c> (columns -1) or <c>[rows, columns]</c>.</summary>
    public OrtValue View(long rows, long columns = -1) => _views.Get(rows, columns, _create);

    /// <inheritdoc />
    public OrtValue ViewAt(long offset, long rows, long columns)
    {
        var size = Marshal.SizeOf<T>();
        return OrtValue.CreateTensorValueWithData(_memory, _type, [rows, columns], _deviceData + (nint)(offset * size), rows * columns * size);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _views.Clear();
        FreeDevice();
        UnlockHost();
    }

    private void LockHost()
    {
        var bytes = (long)_host.Length * Marshal.SizeOf<T>();
        if (!OnHost && bytes >= PageLockBytes)
        {
            var start = Marshal.UnsafeAddrOfPinnedArrayElement(_host, 0);
            _locked = CudaRuntime.RegisterHost(start, bytes) ? start : IntPtr.Zero;
        }
    }

    private void UnlockHost()
    {
        if (_locked != IntPtr.Zero)
        {
            CudaRuntime.UnregisterHost(_locked);
            _locked = IntPtr.Zero;
        }
    }

    private IntPtr AllocateDevice() =>
        OnHost ? Marshal.UnsafeAddrOfPinnedArrayElement(_host, 0) : CudaRuntime.AllocateZeroed(_device, (long)_host.Length * Marshal.SizeOf<T>());

    private void FreeDevice()
    {
        if (!OnHost)
        {
            CudaRuntime.Free(_deviceData);
        }

        _deviceData = IntPtr.Zero;
    }

    private OrtValue CreateView(long[] shape, long count) =>
        OrtValue.CreateTensorValueWithData(_memory, _type, shape, _deviceData, count * Marshal.SizeOf<T>());
}
