// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The host KV tier's block copies (ADR 0009) over the device pools: each layer's key and value pool is
/// <c>[blocks, block_size, heads, width]</c>, so a block is one contiguous run of each, copied with one synchronous
/// <c>cudaMemcpy</c> per pool (<see cref="CudaRuntime.CopyToHost"/>, <see cref="CudaRuntime.CopyToDevice"/>). Written for
/// the GPU machine; no CPU test reaches it.
/// </summary>
internal sealed unsafe partial class PagedDeviceRunner : IKvBlockTransfer
{
    private KvPoolRange[]? _poolRanges;

    /// <inheritdoc />
    int IKvBlockTransfer.BlockBytes
    {
        get
        {
            long bytes = 0;
            for (var slot = 0; slot < _pools.Length; slot++)
            {
                bytes += PoolBlockBytes(slot);
            }

            return checked((int)bytes);
        }
    }

    /// <inheritdoc />
    IReadOnlyList<KvPoolRange> IKvBlockTransfer.Pools => _poolRanges ??= [new KvPoolRange(_model.Device.ToString(), 0, BlockCount)];

    /// <inheritdoc />
    void IKvBlockTransfer.CopyOut(int block, Span<byte> destination)
    {
        CheckTransfer(block, destination.Length);
        fixed (byte* host = destination)
        {
            Copy(block, host, toDevice: false);
        }
    }

    /// <inheritdoc />
    void IKvBlockTransfer.CopyIn(int block, ReadOnlySpan<byte> source)
    {
        CheckTransfer(block, source.Length);
        fixed (byte* host = source)
        {
            Copy(block, host, toDevice: true);
        }
    }

    /// <summary>One synchronous copy per pool between block <paramref name="block"/> and the pools' runs at <paramref name="host"/>, in pool order.</summary>
    private void Copy(int block, byte* host, bool toDevice)
    {
        long offset = 0;
        for (var slot = 0; slot < _pools.Length; slot++)
        {
            var bytes = PoolBlockBytes(slot);
            var device = _pools[slot] + (nint)(block * bytes);
            if (toDevice)
            {
                CudaRuntime.CopyToDevice(device, (IntPtr)(host + offset), bytes);
            }
            else
            {
                CudaRuntime.CopyToHost((IntPtr)(host + offset), device, bytes);
            }

            offset += bytes;
        }
    }

    /// <summary>Bytes of one block in pool <paramref name="slot"/> (2 x layer for keys, + 1 for values), as <c>BindPool</c> sized it.</summary>
    private long PoolBlockBytes(int slot)
    {
        var layer = Spec.KvLayers[slot / 2];
        var (heads, width) = slot % 2 == 0 ? (layer.KeyHeads, layer.KeyWidth) : (layer.ValueHeads, layer.ValueWidth);
        return (long)BlockSize * heads * width * Spec.KvElementBytes;
    }

    private void CheckTransfer(int block, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(block);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(block, BlockCount);
        var blockBytes = ((IKvBlockTransfer)this).BlockBytes;
        if (length != blockBytes)
        {
            throw new ArgumentException($"Span has {length} bytes; a block has {blockBytes}.", nameof(length));
        }
    }
}
