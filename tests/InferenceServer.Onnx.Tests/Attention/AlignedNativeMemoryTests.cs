using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Tests.Attention;

/// <summary><see cref="AlignedNativeMemory"/>: zeroed, aligned, and on Linux large allocations advised onto huge pages.</summary>
public sealed class AlignedNativeMemoryTests
{
    [Fact]
    public unsafe void Large_IsHugePageAligned_Zeroed_AndAdvisedOnLinux()
    {
        // An odd size past 2 MiB: the allocation is padded to whole huge pages, the caller's bytes are all usable.
        var bytes = (3L << 20) + 13;
        using var memory = new AlignedNativeMemory(bytes, 64);
        Assert.Equal(bytes, memory.Length);
        var span = new Span<byte>(memory.Pointer, (int)bytes);
        Assert.True(span.IndexOfAnyExcept((byte)0) < 0);
        span.Fill(0xAB);
        Assert.Equal(0xAB, span[^1]);
        if (OperatingSystem.IsLinux())
        {
            Assert.Equal(0, (long)memory.Pointer % AlignedNativeMemory.HugePage);
            // The advice is taken wherever the kernel has transparent huge pages at all (even when set to "never").
            Assert.Equal(File.Exists("/sys/kernel/mm/transparent_hugepage/enabled"), memory.HugePagesAdvised);
        }
    }

    [Fact]
    public unsafe void Small_KeepsItsAlignment_AndIsNotAdvised()
    {
        using var memory = new AlignedNativeMemory(4096 + 7, 64);
        Assert.Equal(0, (long)memory.Pointer % 64);
        Assert.False(memory.HugePagesAdvised);
        Assert.True(new ReadOnlySpan<byte>(memory.Pointer, 4096 + 7).IndexOfAnyExcept((byte)0) < 0);
    }
}
