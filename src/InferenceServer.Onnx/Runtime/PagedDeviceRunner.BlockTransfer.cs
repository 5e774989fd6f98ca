// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The host KV tier's block copies (ADR 0009) over the device pools: each layer's key and value pool is
/// <c>[blocks, block_size, heads, width]</c>, so a block is one contiguous run of each, one copy per pool. Host memory
/// given to <see cref="IKvBlockTransfer.PinHost"/> is page-locked and its copies are queued (<c>cudaMemcpyAsync</c>) on
/// a transfer stream of the runner's own, waited for once before the next step (<see cref="FinishTransfers"/>): a
/// returning conversation's thousand per-pool copies then cost one synchronization and run at the link's rate instead
/// of the driver's staged pageable rate. Any other span is copied synchronously (<see cref="CudaRuntime.CopyToHost"/>,
/// <see cref="CudaRuntime.CopyToDevice"/>). Written for the GPU machine; no CPU test reaches it.
/// </summary>
internal sealed unsafe partial class PagedDeviceRunner : IKvBlockTransfer
{
    private KvPoolRange[]? _poolRanges;
    private IntPtr _transferStream;
    private bool _transfersQueued;
    private (IntPtr Start, long Bytes)[] _pinned = [];

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

    /// <inheritdoc />
    IDisposable? IKvBlockTransfer.PinHost(IntPtr pointer, long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        if (!CudaRuntime.RegisterHost(pointer, bytes))
        {
            return null;
        }

        if (_transferStream == IntPtr.Zero)
        {
            _transferStream = CudaRuntime.CreateStream(_model.DeviceId);
        }

        _pinned = [.. _pinned, (pointer, bytes)];
        return new HostPin(this, pointer);
    }

    /// <summary>Waits for the copies queued on the transfer stream; called before a step and before the pools or a pin go.</summary>
    private void FinishTransfers()
    {
        if (_transfersQueued)
        {
            CudaRuntime.SynchronizeStream(_transferStream);
            _transfersQueued = false;
        }
    }

    /// <summary>
    /// One copy per pool between block <paramref name="block"/> and the pools' runs at <paramref name="host"/>, in pool
    /// order: queued on the transfer stream when the host bytes are pinned, else synchronous.
    /// </summary>
    private void Copy(int block, byte* host, bool toDevice)
    {
        var queued = IsPinned(host, ((IKvBlockTransfer)this).BlockBytes);
        long offset = 0;
        for (var slot = 0; slot < _pools.Length; slot++)
        {
            var bytes = PoolBlockBytes(slot);
            var device = _pools[slot] + (nint)(block * bytes);
            var hostRun = (IntPtr)(host + offset);
            if (queued)
            {
                CudaRuntime.CopyAsync(toDevice ? device : hostRun, toDevice ? hostRun : device, bytes, toDevice, _transferStream);
            }
            else if (toDevice)
            {
                CudaRuntime.CopyToDevice(device, hostRun, bytes);
            }
            else
            {
                CudaRuntime.CopyToHost(hostRun, device, bytes);
            }

            offset += bytes;
        }

        _transfersQueued |= queued;
    }

    private bool IsPinned(byte* host, long length)
    {
        foreach (var (start, bytes) in _pinned)
        {
            if ((byte*)start <= host && host + length <= (byte*)start + bytes)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Releases a <see cref="IKvBlockTransfer.PinHost"/> registration once its queued copies are done.</summary>
    private sealed class HostPin(PagedDeviceRunner runner, IntPtr pointer) : IDisposable
    {
        private IntPtr _pointer = pointer;

        public void Dispose()
        {
            if (_pointer == IntPtr.Zero)
            {
                return;
            }

            runner.FinishTransfers();
            runner._pinned = [.. runner._pinned.Where(p => p.Start != _pointer)];
            CudaRuntime.UnregisterHost(_pointer);
            _pointer = IntPtr.Zero;
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
