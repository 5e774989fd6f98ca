// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The host KV tier's memory (ADR 0009): one aligned native allocation of <see cref="SlotCount"/> slots of
/// <see cref="SlotBytes"/> bytes, each holding one KV block as <see cref="IKvBlockTransfer.CopyOut"/> wrote it. Outside
/// the GC heap, so a large tier neither moves nor lengthens collections. Which slot holds what is the engine's business.
/// </summary>
internal sealed unsafe class HostBlockArena : IDisposable
{
    private readonly AlignedNativeMemory _memory;

    /// <summary>Allocates <paramref name="slotCount"/> slots of <paramref name="slotBytes"/> bytes, zeroed.</summary>
    public HostBlockArena(int slotCount, int slotBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slotCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slotBytes);
        SlotCount = slotCount;
        SlotBytes = slotBytes;
        _memory = new AlignedNativeMemory(checked((long)slotCount * slotBytes), 64);
    }

    /// <summary>Slots in the arena.</summary>
    public int SlotCount { get; }

    /// <summary>Bytes of one slot (one KV block).</summary>
    public int SlotBytes { get; }

    /// <summary>The first slot's first byte (the arena is one allocation of <see cref="Bytes"/>); valid until disposed.</summary>
    public IntPtr Start => (IntPtr)_memory.Pointer;

    /// <summary>Bytes of all slots together.</summary>
    public long Bytes => (long)SlotCount * SlotBytes;

    /// <summary>The bytes of slot <paramref name="slot"/>; valid until the arena is disposed.</summary>
    public Span<byte> Slot(int slot)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slot);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(slot, SlotCount);
        ObjectDisposedException.ThrowIf(_memory.IsClosed, this);
        return new Span<byte>(_memory.Pointer + ((long)slot * SlotBytes), SlotBytes);
    }

    /// <inheritdoc />
    public void Dispose() => _memory.Dispose();
}
