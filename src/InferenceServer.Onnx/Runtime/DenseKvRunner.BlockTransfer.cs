// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The host KV tier's block copies (ADR 0009) over the runner's <see cref="PagedKvStore"/> pages: a block of one layer is
/// one contiguous run of each pool (<c>[block][head][slot][width]</c>), so a block is 2 x layers span copies.
/// </summary>
public sealed partial class DenseKvRunner : IKvBlockTransfer
{
    private KvPoolRange[]? _pools;

    /// <inheritdoc />
    int IKvBlockTransfer.BlockBytes
    {
        get
        {
            long floats = 0;
            foreach (var layer in _store.Layers)
            {
                floats += layer.KeyFloatsPerToken + layer.ValueFloatsPerToken;
            }

            return checked((int)(floats * _store.BlockSize * sizeof(float)));
        }
    }

    /// <inheritdoc />
    IReadOnlyList<KvPoolRange> IKvBlockTransfer.Pools => _pools ??= [new KvPoolRange("host", 0, BlockCount)];

    /// <inheritdoc />
    void IKvBlockTransfer.CopyOut(int block, Span<byte> destination)
    {
        CheckTransfer(block, destination.Length);
        var offset = 0;
        for (var layer = 0; layer < _store.Layers.Count; layer++)
        {
            offset += CopyRun(KeyRun(layer, block), destination[offset..]);
            offset += CopyRun(ValueRun(layer, block), destination[offset..]);
        }
    }

    /// <inheritdoc />
    void IKvBlockTransfer.CopyIn(int block, ReadOnlySpan<byte> source)
    {
        CheckTransfer(block, source.Length);
        var offset = 0;
        for (var layer = 0; layer < _store.Layers.Count; layer++)
        {
            var keys = MemoryMarshal.AsBytes(KeyRun(layer, block));
            source.Slice(offset, keys.Length).CopyTo(keys);
            offset += keys.Length;
            var values = MemoryMarshal.AsBytes(ValueRun(layer, block));
            source.Slice(offset, values.Length).CopyTo(values);
            offset += values.Length;
        }
    }

    private static int CopyRun(Span<float> run, Span<byte> destination)
    {
        var bytes = MemoryMarshal.AsBytes(run);
        bytes.CopyTo(destination);
        return bytes.Length;
    }

    private Span<float> KeyRun(int layer, int block)
    {
        var length = _store.BlockSize * _store.Layers[layer].KeyFloatsPerToken;
        return _store.Keys[layer].AsSpan(block * length, length);
    }

    private Span<float> ValueRun(int layer, int block)
    {
        var length = _store.BlockSize * _store.Layers[layer].ValueFloatsPerToken;
        return _store.Values[layer].AsSpan(block * length, length);
    }

    private void CheckTransfer(int block, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(block);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(block, BlockCount);
        if (length != ((IKvBlockTransfer)this).BlockBytes)
        {
            throw new ArgumentException($"Span has {length} bytes; a block has {((IKvBlockTransfer)this).BlockBytes}.", nameof(length));
        }
    }
}
