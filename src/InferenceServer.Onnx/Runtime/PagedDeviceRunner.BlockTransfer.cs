// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The host KV tier's block copies (ADR 0009) over the device pools: each layer's key and value pool is
/// <c>[blocks, block_size, heads, width]</c>, so a block is one contiguous run of each, and the pools lie one after another
/// in one allocation (<see cref="KvPoolArena"/>), so that a block of every pool is one pitched copy where the pools are
/// alike. Host memory given to <see cref="IKvBlockTransfer.PinHost"/> is page-locked and its copies are queued
/// (<c>cudaMemcpy2DAsync</c>, one per block for a model whose layers are alike), in the order asked, on a non-blocking
/// transfer stream of the runner's own, so they run at the link's rate and beside the steps:
/// <list type="bullet">
/// <item>Copies out (a demoted or preempted block) are waited for before the next step (<see cref="FinishTransfers"/>,
/// one event): that step may reuse the block.</item>
/// <item>Copies in are not: <see cref="IKvBlockTransfer.CopyInFence"/> records an event after them, and the scheduler
/// keeps the sequences that own those blocks out of the steps until it has passed (<see cref="IKvBlockTransfer.CopyInDone"/>),
/// while the other sequences step (vLLM's asynchronous KV load). One stream keeps every copy in order, so a host slot
/// read by a copy in is never overwritten by a later copy out before it is read, and a block is never written by a copy
/// in before an earlier copy out has read it.</item>
/// </list>
/// Any other span is copied synchronously (<see cref="CudaRuntime.CopyToHost"/>, <see cref="CudaRuntime.CopyToDevice"/>):
/// the tier's slots are all pinned or none. Written for the GPU machine; only the GPU tests reach it.
/// </summary>
internal sealed unsafe partial class PagedDeviceRunner : IKvBlockTransfer
{
    private KvPoolRange[]? _poolRanges;
    private readonly Queue<(long Fence, IntPtr Event)> _copyInFences = new();
    private IntPtr _transferStream;
    private bool _transfersQueued;
    private bool _copiesOutQueued;
    private bool _copiesInUnfenced;
    private long _lastFence;
    private long _passedFence;
    private long _copyOutWaitTicks;
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
            _transferStream = CudaRuntime.CreateNonBlockingStream(_model.DeviceId);
        }

        _pinned = [.. _pinned, (pointer, bytes)];
        return new HostPin(this, pointer);
    }

    /// <inheritdoc />
    /// <remarks>The wait is for an event after the last copy out, so on the one transfer stream it also covers the copies in queued before it.</remarks>
    double IKvBlockTransfer.CopyOutWaitSeconds => Interlocked.Read(ref _copyOutWaitTicks) / (double)Stopwatch.Frequency;

    /// <inheritdoc />
    long IKvBlockTransfer.CopyInFence()
    {
        if (_copiesInUnfenced)
        {
            _copyInFences.Enqueue((++_lastFence, CudaRuntime.RecordEvent(_transferStream)));
            _copiesInUnfenced = false;
        }

        PollCopyInFences();
        return _lastFence > _passedFence ? _lastFence : 0;
    }

    /// <inheritdoc />
    bool IKvBlockTransfer.CopyInDone(long fence)
    {
        if (fence > _passedFence)
        {
            PollCopyInFences();
        }

        return fence <= _passedFence;
    }

    /// <inheritdoc />
    void IKvBlockTransfer.WaitCopyIn(long fence)
    {
        // Copies finish in order: waiting for this fence's event passes every earlier one too.
        while (_copyInFences.TryPeek(out var head) && head.Fence <= fence)
        {
            CudaRuntime.WaitEvent(head.Event);
            PassFence();
        }
    }

    /// <summary>Before a step: waits for the copies out queued so far (and so for every copy queued before them).</summary>
    private void FinishTransfers()
    {
        if (_copiesOutQueued)
        {
            var copiedOut = CudaRuntime.RecordEvent(_transferStream);
            var started = Stopwatch.GetTimestamp();
            try
            {
                CudaRuntime.WaitEvent(copiedOut);
            }
            finally
            {
                Interlocked.Add(ref _copyOutWaitTicks, Stopwatch.GetTimestamp() - started);
                CudaRuntime.DestroyEvent(copiedOut);
            }

            _copiesOutQueued = false;
            PollCopyInFences();
        }
    }

    /// <summary>Before the pools or a pin go: waits for every queued copy and retires the copy-in fences.</summary>
    private void FinishAllTransfers()
    {
        if (_transfersQueued)
        {
            CudaRuntime.SynchronizeStream(_transferStream);
            _transfersQueued = false;
            _copiesOutQueued = false;
        }

        while (_copyInFences.Count > 0)
        {
            PassFence();
        }
    }

    /// <summary>Retires the copy-in fences whose events have fired, oldest first.</summary>
    private void PollCopyInFences()
    {
        while (_copyInFences.TryPeek(out var head) && CudaRuntime.EventDone(head.Event))
        {
            PassFence();
        }
    }

    private void PassFence()
    {
        var (fence, cudaEvent) = _copyInFences.Dequeue();
        CudaRuntime.DestroyEvent(cudaEvent);
        _passedFence = fence;
    }

    /// <summary>
    /// Copies block <paramref name="block"/> of every pool to or from the pools' runs at <paramref name="host"/>, in pool
    /// order: queued on the transfer stream when the host bytes are pinned, one pitched copy per run of like pools
    /// (<see cref="KvPoolArena"/>; one per block for a model whose layers are alike), else synchronously, one copy per pool.
    /// </summary>
    private void Copy(int block, byte* host, bool toDevice)
    {
        var queued = IsPinned(host, ((IKvBlockTransfer)this).BlockBytes);
        if (queued)
        {
            foreach (var run in _arena.Runs)
            {
                var device = _arenaMemory + (nint)(run.DeviceOffset + (block * run.BlockBytes));
                var hostRun = (IntPtr)(host + run.HostOffset);
                if (run.Pools == 1)
                {
                    CudaRuntime.CopyAsync(toDevice ? device : hostRun, toDevice ? hostRun : device, run.BlockBytes, toDevice, _transferStream);
                }
                else if (toDevice)
                {
                    CudaRuntime.Copy2DAsync(device, run.Pitch, hostRun, run.HostPitch, run.BlockBytes, run.Pools, toDevice: true, _transferStream);
                }
                else
                {
                    CudaRuntime.Copy2DAsync(hostRun, run.HostPitch, device, run.Pitch, run.BlockBytes, run.Pools, toDevice: false, _transferStream);
                }
            }

            _transfersQueued = true;
            _copiesOutQueued |= !toDevice;
            _copiesInUnfenced |= toDevice;
            return;
        }

        long offset = 0;
        for (var slot = 0; slot < _pools.Length; slot++)
        {
            var bytes = PoolBlockBytes(slot);
            if (bytes == 0)
            {
                // A latent layer's missing value pool.
                continue;
            }

            var device = _pools[slot] + (nint)(block * bytes);
            var hostRun = (IntPtr)(host + offset);
            if (toDevice)
            {
                CudaRuntime.CopyToDevice(device, hostRun, bytes);
            }
            else
            {
                CudaRuntime.CopyToHost(hostRun, device, bytes);
            }

            offset += bytes;
        }
    }

    /// <summary>Calls one queued block copy makes: one per run of like pools (<see cref="KvPoolArena"/>); GPU tests read it.</summary>
    internal int QueuedCallsPerBlock => _arena.Runs.Count;

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

            runner.FinishAllTransfers();
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
