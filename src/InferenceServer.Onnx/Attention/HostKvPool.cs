// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// KV pages in native (aligned, unmanaged) host memory for several layers: per layer, <see cref="BlockCount"/> blocks of
/// <see cref="BlockSize"/> token rows. Block ids here are LOCAL to the pool (0..BlockCount-1).
/// </summary>
/// <remarks>
/// Layout: block-major, so that one block of every layer is one contiguous run of <see cref="BytesPerBlock"/> bytes
/// (copy-on-write and the host tier copy it with one memcpy). Inside a block, layer by layer and KV head by KV head, the
/// head's keys and then its values ([BlockSize, ValueWidth], row-major; absent when the value is a key prefix): one block
/// of one layer and KV head is contiguous, which is what the kernel streams. Keys are stored transposed,
/// [KeyWidth, BlockSize], so that the kernel computes a whole block's scores with vector FMAs across positions and no
/// horizontal sums; a layer whose value is a key prefix (MLA) keeps its keys row-major, [BlockSize, KeyWidth], because
/// its value rows are read from them. Not thread-safe for writes; <see cref="CpuPagedAttention"/> only reads it.
/// </remarks>
internal sealed unsafe class HostKvPool : IDisposable
{
    /// <summary>Alignment of the allocation (a cache line, and the widest vector register).</summary>
    private const int Alignment = 64;

    private readonly AlignedNativeMemory _memory;
    private readonly long[] _layerOffsets;
    private readonly long[] _headStrides;
    private readonly long[] _valueOffsets;
    private readonly int _elementSize;
    private volatile bool _mayHoldNonFiniteHalf;

    /// <summary>Allocates (zeroed) pages for <paramref name="blockCount"/> blocks of every layer in <paramref name="layers"/>.</summary>
    public HostKvPool(IReadOnlyList<KvLayerShape> layers, int blockCount, int blockSize, KvStorage storage)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentOutOfRangeException.ThrowIfZero(layers.Count, nameof(layers));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        _elementSize = KvConvert.ElementSize(storage);
        var shapes = new KvLayerShape[layers.Count];
        _layerOffsets = new long[layers.Count];
        _headStrides = new long[layers.Count];
        _valueOffsets = new long[layers.Count];
        long offset = 0;
        for (var l = 0; l < shapes.Length; l++)
        {
            var shape = layers[l];
            if (shape.KvHeads <= 0 || shape.KeyWidth <= 0 || shape.ValueWidth <= 0)
            {
                throw new ArgumentException($"Layer {l}: KV heads and widths must be positive, got {shape}.", nameof(layers));
            }

            if (shape.ValueIsKeyPrefix && shape.ValueWidth > shape.KeyWidth)
            {
                throw new ArgumentException($"Layer {l}: a value that is a key prefix cannot be wider than the key ({shape}).", nameof(layers));
            }

            shapes[l] = shape;
            _layerOffsets[l] = offset;
            _valueOffsets[l] = (long)blockSize * shape.KeyWidth * _elementSize;
            var valueBytes = shape.ValueIsKeyPrefix ? 0 : (long)blockSize * shape.ValueWidth * _elementSize;
            _headStrides[l] = _valueOffsets[l] + valueBytes;
            offset += _headStrides[l] * shape.KvHeads;
        }

        Layers = shapes;
        BlockCount = blockCount;
        BlockSize = blockSize;
        Storage = storage;
        BytesPerBlock = offset;
        TotalBytes = checked(offset * blockCount);
        _memory = new AlignedNativeMemory(TotalBytes, Alignment);
    }

    /// <summary>The shape of each layer's rows.</summary>
    public IReadOnlyList<KvLayerShape> Layers { get; }

    /// <summary>Blocks per layer.</summary>
    public int BlockCount { get; }

    /// <summary>Token rows per block.</summary>
    public int BlockSize { get; }

    /// <summary>The element type of the stored keys and values.</summary>
    public KvStorage Storage { get; }

    /// <summary>Bytes of one block: all layers, key + value.</summary>
    public long BytesPerBlock { get; }

    /// <summary>Bytes of the whole pool.</summary>
    public long TotalBytes { get; }

    /// <summary>Bytes of one stored element.</summary>
    internal int ElementSize => _elementSize;

    /// <summary>
    /// Writes T tokens' rows of one layer: <c>slots[t] = localBlock * BlockSize + offsetInBlock</c>; <paramref name="key"/>
    /// is [T, KvHeads * KeyWidth] and <paramref name="value"/> [T, KvHeads * ValueWidth] (ignored, and may be empty, when
    /// the layer's value is a key prefix).
    /// </summary>
    public void Write(int layer, ReadOnlySpan<int> slots, ReadOnlySpan<float> key, ReadOnlySpan<float> value)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, Layers.Count);
        var shape = Layers[layer];
        var keyRow = shape.KvHeads * shape.KeyWidth;
        var valueRow = shape.KvHeads * shape.ValueWidth;
        if (key.Length != slots.Length * keyRow)
        {
            throw new ArgumentException($"Key has {key.Length} values; {slots.Length} tokens of layer {layer} need {slots.Length * keyRow}.", nameof(key));
        }

        if (!shape.ValueIsKeyPrefix && value.Length != slots.Length * valueRow)
        {
            throw new ArgumentException($"Value has {value.Length} values; {slots.Length} tokens of layer {layer} need {slots.Length * valueRow}.", nameof(value));
        }

        if (Storage == KvStorage.Float16 && !_mayHoldNonFiniteHalf
            && (KvConvert.AnyNonFiniteAsHalf(key) || (!shape.ValueIsKeyPrefix && KvConvert.AnyNonFiniteAsHalf(value))))
        {
            _mayHoldNonFiniteHalf = true;
        }

        var slotCount = (long)BlockCount * BlockSize;
        for (var t = 0; t < slots.Length; t++)
        {
            var slot = slots[t];
            if ((uint)slot >= slotCount)
            {
                throw new ArgumentOutOfRangeException(nameof(slots), slot, $"Slot must be in [0, {slotCount}).");
            }

            var block = slot / BlockSize;
            var row = slot % BlockSize;
            for (var h = 0; h < shape.KvHeads; h++)
            {
                var head = HeadPointer(layer, block, h);
                var headKey = key.Slice((t * keyRow) + (h * shape.KeyWidth), shape.KeyWidth);
                if (shape.ValueIsKeyPrefix)
                {
                    KvConvert.Store(headKey, head + ((long)row * shape.KeyWidth * _elementSize), Storage);
                }
                else
                {
                    KvConvert.StoreStrided(headKey, head + ((long)row * _elementSize), BlockSize, Storage);
                }

                if (!shape.ValueIsKeyPrefix)
                {
                    KvConvert.Store(value.Slice((t * valueRow) + (h * shape.ValueWidth), shape.ValueWidth), head + _valueOffsets[layer] + ((long)row * shape.ValueWidth * _elementSize), Storage);
                }
            }
        }
    }

    /// <summary>Copies block <paramref name="source"/> to block <paramref name="destination"/> in every layer (prefix-cache copy-on-write, tests).</summary>
    public void CopyBlock(int source, int destination)
    {
        CheckBlock(source, nameof(source));
        CheckBlock(destination, nameof(destination));
        if (source != destination)
        {
            Buffer.MemoryCopy(BlockPointer(source), BlockPointer(destination), BytesPerBlock, BytesPerBlock);
        }
    }

    /// <summary>Copies the raw bytes of one block of every layer into <paramref name="destination"/> (<see cref="BytesPerBlock"/> bytes).</summary>
    public void ReadBlock(int block, Span<byte> destination)
    {
        CheckBlock(block, nameof(block));
        CheckBlockSpan(destination.Length, nameof(destination));
        new ReadOnlySpan<byte>(BlockPointer(block), (int)BytesPerBlock).CopyTo(destination);
    }

    /// <summary>Overwrites one block of every layer with raw bytes from <see cref="ReadBlock"/> (<see cref="BytesPerBlock"/> bytes).</summary>
    public void WriteBlock(int block, ReadOnlySpan<byte> source)
    {
        CheckBlock(block, nameof(block));
        CheckBlockSpan(source.Length, nameof(source));
        if (Storage == KvStorage.Float16 && !_mayHoldNonFiniteHalf && KvConvert.AnyNonFiniteHalf(MemoryMarshal.Cast<byte, ushort>(source)))
        {
            _mayHoldNonFiniteHalf = true;
        }

        source.CopyTo(new Span<byte>(BlockPointer(block), (int)BytesPerBlock));
    }

    /// <inheritdoc/>
    public void Dispose() => _memory.Dispose();

    /// <summary>
    /// False while every fp16 value ever written to the pool is finite (fp16 storage; always false otherwise), so that
    /// reads may convert with <see cref="KvSimd"/>'s finite-only fp16 path, which needs no select for infinity and NaN.
    /// Set for good by the first write that stores an infinity or NaN (a float of 65520 or more rounds to infinity).
    /// </summary>
    internal bool MayHoldNonFiniteHalf => _mayHoldNonFiniteHalf;

    /// <summary>The first byte of block <paramref name="block"/> (all layers).</summary>
    internal byte* BlockPointer(int block)
    {
        ObjectDisposedException.ThrowIf(_memory.IsClosed, this);
        return _memory.Pointer + (block * BytesPerBlock);
    }

    /// <summary>The keys ([BlockSize, KeyWidth]) of one KV head of one layer in one block; its values follow at <see cref="ValueOffset"/>.</summary>
    internal byte* HeadPointer(int layer, int block, int kvHead) =>
        BlockPointer(block) + _layerOffsets[layer] + (kvHead * _headStrides[layer]);

    /// <summary>Bytes of one KV head's keys and values in one block of <paramref name="layer"/> (contiguous from <see cref="HeadPointer"/>).</summary>
    internal long HeadStride(int layer) => _headStrides[layer];

    /// <summary>Bytes from a head's keys to its values (unused when the value is a key prefix).</summary>
    internal long ValueOffset(int layer) => _valueOffsets[layer];

    private void CheckBlock(int block, string name)
    {
        if ((uint)block >= (uint)BlockCount)
        {
            throw new ArgumentOutOfRangeException(name, block, $"Block must be in [0, {BlockCount}).");
        }
    }

    private void CheckBlockSpan(int length, string name)
    {
        if (length != BytesPerBlock)
        {
            throw new ArgumentException($"Span has {length} bytes; a block has {BytesPerBlock}.", name);
        }
    }
}
