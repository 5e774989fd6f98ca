// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// One block of aligned, unmanaged host memory from <see cref="NativeMemory.AlignedAlloc(nuint, nuint)"/>, freed when the
/// handle is released (by <see cref="SafeHandle.Dispose()"/> or, if the owner forgets, by the finalizer).
/// </summary>
/// <remarks>
/// On Linux an allocation of 2 MiB or more is 2 MiB-aligned, padded to whole 2 MiB pages and advised
/// <c>MADV_HUGEPAGE</c> before it is first touched, so transparent huge pages back it where the kernel allows them
/// (<c>/sys/kernel/mm/transparent_hugepage/enabled</c> "madvise" or "always"). Paged attention reads a sequence's blocks
/// scattered through gigabytes: with 4 KiB pages nearly every 4 KiB of KV it reads costs a TLB miss and a page walk,
/// and the hardware prefetcher stops at each page's end. The advice is only advice: where it is refused the memory is
/// the same, on small pages.
/// </remarks>
internal sealed unsafe partial class AlignedNativeMemory : SafeHandle
{
    /// <summary>The huge page size of x86-64 and arm64 Linux.</summary>
    internal const long HugePage = 2 << 20;

    private const int MadviseHugePage = 14;

    /// <summary>Allocates <paramref name="bytes"/> bytes aligned to <paramref name="alignment"/>, zeroed.</summary>
    public AlignedNativeMemory(long bytes, int alignment)
        : base(IntPtr.Zero, ownsHandle: true)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        var huge = bytes >= HugePage && OperatingSystem.IsLinux();
        var size = huge ? (bytes + HugePage - 1) / HugePage * HugePage : bytes;
        var pointer = NativeMemory.AlignedAlloc((nuint)size, (nuint)(huge ? Math.Max(HugePage, alignment) : alignment));
        if (huge)
        {
            HugePagesAdvised = Madvise(pointer, (nuint)size, MadviseHugePage) == 0;
        }

        NativeMemory.Clear(pointer, (nuint)bytes);
        SetHandle((IntPtr)pointer);
        Length = bytes;
    }

    /// <summary>Whether the kernel took the huge-page advice for this allocation.</summary>
    public bool HugePagesAdvised { get; }

    /// <summary>The size of the allocation in bytes.</summary>
    public long Length { get; }

    /// <summary>The first byte; valid until the handle is disposed.</summary>
    public byte* Pointer => (byte*)handle;

    /// <inheritdoc/>
    public override bool IsInvalid => handle == IntPtr.Zero;

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(void* address, nuint length, int advice);

    /// <inheritdoc/>
    protected override bool ReleaseHandle()
    {
        NativeMemory.AlignedFree((void*)handle);
        return true;
    }
}
