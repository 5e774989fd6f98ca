// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// One block of aligned, unmanaged host memory from <see cref="NativeMemory.AlignedAlloc(nuint, nuint)"/>, freed when the
/// handle is released (by <see cref="SafeHandle.Dispose()"/> or, if the owner forgets, by the finalizer).
/// </summary>
internal sealed unsafe class AlignedNativeMemory : SafeHandle
{
    /// <summary>Allocates <paramref name="bytes"/> bytes aligned to <paramref name="alignment"/>, zeroed.</summary>
    public AlignedNativeMemory(long bytes, int alignment)
        : base(IntPtr.Zero, ownsHandle: true)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        var pointer = NativeMemory.AlignedAlloc((nuint)bytes, (nuint)alignment);
        NativeMemory.Clear(pointer, (nuint)bytes);
        SetHandle((IntPtr)pointer);
        Length = bytes;
    }

    /// <summary>The size of the allocation in bytes.</summary>
    public long Length { get; }

    /// <summary>The first byte; valid until the handle is disposed.</summary>
    public byte* Pointer => (byte*)handle;

    /// <inheritdoc/>
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <inheritdoc/>
    protected override bool ReleaseHandle()
    {
        NativeMemory.AlignedFree((void*)handle);
        return true;
    }
}
