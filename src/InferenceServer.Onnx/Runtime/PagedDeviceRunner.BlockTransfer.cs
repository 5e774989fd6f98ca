// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The host KV tier's block copies (ADR 0009) over the device pools: each layer's key and value pool is
/// <c>[blocks, block_size, heads, width]</c>, so a block is one contiguous run of each. Host memory given to
/// <see cref="IKvBlockTransfer.PinHost"/> is page-locked and its copies are queued, not waited for:
/// <list type="bullet">
/// <item>Copies are gathered in the order asked while they go one way, and queued when the direction turns, a fence is
/// asked for, or a step starts: consecutive blocks whose host bytes lie a constant pitch apart go as one pitched copy per
/// pool (<see cref="BlockCopyRuns"/>), not one copy per block and pool.</item>
/// <item>Copies out (a demoted or preempted block) run on a non-blocking stream of their own and are waited for before the
/// next step (<see cref="FinishTransfers"/>, one event): that step may reuse the block.</item>
/// <item>Copies in run on another (the GPU copies each direction on its own engine, so a step's copies out never queue
/// ahead of a returning history's copies in). They are not waited for: <see cref="IKvBlockTransfer.CopyInFence"/> records
/// an event after them, and the scheduler keeps the sequences that own those blocks out of the steps until it has passed
/// (<see cref="IKvBlockTransfer.CopyInDone"/>), while the other sequences step (vLLM's asynchronous KV load).</item>
/// <item>The two orderings one stream gave by itself are kept by events, and only where a copy needs them: a copy out
/// into host bytes that a copy in still in flight reads, or from a block one still writes, waits for that copy in's
/// fence; a copy in from host bytes or into a block that a copy out since the last step touches waits for the copies
/// out.</item>
/// </list>
/// Any other span is copied synchronously (<see cref="CudaRuntime.CopyToHost"/>, <see cref="CudaRuntime.CopyToDevice"/>):
/// the tier's slots are all pinned or none. Written for the GPU machine; only the GPU tests reach it.
/// </summary>
internal sealed unsafe partial class PagedDeviceRunner : IKvBlockTransfer
{
    private KvPoolRange[]? _poolRanges;
    private readonly Queue<(long Fence, IntPtr Event)> _copyInFences = new();
    private readonly List<(int Block, IntPtr Host)> _gathered = [];
    private readonly List<BlockCopyRun> _runs = [];

    // Copies in still in flight, by block and by host bytes: the fence after them (stale once it has passed).
    private readonly Dictionary<int, long> _inFlightInBlocks = [];
    private readonly Dictionary<IntPtr, long> _inFlightInHosts = [];

    // Copies out queued since the last step (all waited for before it).
    private readonly HashSet<int> _outBlocks = [];
    private readonly HashSet<IntPtr> _outHosts = [];
    private IntPtr _outStream;
    private IntPtr _inStream;
    private IntPtr _copiedOut;
    private bool _gatheredToDevice;
    private long _lastFence;
    private long _passedFence;
    private (IntPtr Start, long Bytes)[] _pinned = [];

    /// <inheritdoc />
    int IKvBlockTransfer.BlockBytes => TransferBlockBytes;

    private int TransferBlockBytes
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

        if (_inStream == IntPtr.Zero)
        {
            _inStream = CudaRuntime.CreateNonBlockingStream(_model.DeviceId);
            _outStream = CudaRuntime.CreateNonBlockingStream(_model.DeviceId);
        }

        _pinned = [.. _pinned, (pointer, bytes)];
        return new HostPin(this, pointer);
    }

    /// <inheritdoc />
    long IKvBlockTransfer.CopyInFence()
    {
        QueueGathered();
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
        // Copies in finish in order (one stream): waiting for this fence's event passes every earlier one too.
        while (_copyInFences.TryPeek(out var head) && head.Fence <= fence)
        {
            CudaRuntime.WaitEvent(head.Event);
            PassFence();
        }
    }

    /// <summary>Before a step: queues what is gathered and waits for the copies out queued so far.</summary>
    private void FinishTransfers()
    {
        QueueGathered();
        if (_copiedOut != IntPtr.Zero)
        {
            CudaRuntime.WaitEvent(_copiedOut);
            ForgetCopiesOut();
            PollCopyInFences();
        }
    }

    /// <summary>Before the pools or a pin go: waits for every queued copy and retires the copy-in fences.</summary>
    private void FinishAllTransfers()
    {
        QueueGathered();
        if (_inStream != IntPtr.Zero)
        {
            CudaRuntime.SynchronizeStream(_outStream);
            CudaRuntime.SynchronizeStream(_inStream);
        }

        ForgetCopiesOut();
        while (_copyInFences.Count > 0)
        {
            PassFence();
        }

        _inFlightInBlocks.Clear();
        _inFlightInHosts.Clear();
    }

    private void DestroyTransferStreams()
    {
        CudaRuntime.DestroyStream(_inStream);
        CudaRuntime.DestroyStream(_outStream);
        _inStream = IntPtr.Zero;
        _outStream = IntPtr.Zero;
    }

    private void ForgetCopiesOut()
    {
        CudaRuntime.DestroyEvent(_copiedOut);
        _copiedOut = IntPtr.Zero;
        _outBlocks.Clear();
        _outHosts.Clear();
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
    /// Gathers a copy between block <paramref name="block"/> and host bytes at <paramref name="host"/> when they are
    /// pinned (queuing what was gathered the other way first), else copies it now, one copy per pool.
    /// </summary>
    private void Copy(int block, byte* host, bool toDevice)
    {
        if (IsPinned(host, TransferBlockBytes))
        {
            if (_gathered.Count > 0 && _gatheredToDevice != toDevice)
            {
                QueueGathered();
            }

            _gatheredToDevice = toDevice;
            _gathered.Add((block, (IntPtr)host));
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

    /// <summary>Queues the gathered copies as runs on their direction's stream, behind the copies they must follow.</summary>
    private void QueueGathered()
    {
        if (_gathered.Count == 0)
        {
            return;
        }

        var toDevice = _gatheredToDevice;
        var stream = toDevice ? _inStream : _outStream;
        if (toDevice)
        {
            if (MustFollowCopiesOut())
            {
                CudaRuntime.StreamWaitEvent(_inStream, _copiedOut);
            }
        }
        else if (LatestCopyInRead() is { } copyIn)
        {
            CudaRuntime.StreamWaitEvent(_outStream, copyIn);
        }

        _runs.Clear();
        BlockCopyRuns.Plan(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_gathered), TransferBlockBytes, _runs);
        foreach (var run in _runs)
        {
            QueueRun(run, toDevice, stream);
        }

        if (toDevice)
        {
            var fence = ++_lastFence;
            _copyInFences.Enqueue((fence, CudaRuntime.RecordEvent(_inStream)));
            foreach (var (block, host) in _gathered)
            {
                _inFlightInBlocks[block] = fence;
                _inFlightInHosts[host] = fence;
            }
        }
        else
        {
            CudaRuntime.DestroyEvent(_copiedOut);
            _copiedOut = CudaRuntime.RecordEvent(_outStream);
            foreach (var (block, host) in _gathered)
            {
                _outBlocks.Add(block);
                _outHosts.Add(host);
            }
        }

        _gathered.Clear();
    }

    /// <summary>Whether a gathered copy in reads host bytes or writes a block that a copy out since the last step touches.</summary>
    private bool MustFollowCopiesOut()
    {
        if (_copiedOut == IntPtr.Zero)
        {
            return false;
        }

        foreach (var (block, host) in _gathered)
        {
            if (_outBlocks.Contains(block) || _outHosts.Contains(host))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The event of the newest fence still in flight whose copies in read host bytes a gathered copy out writes, or write
    /// a block it reads; null when there is none.
    /// </summary>
    private IntPtr? LatestCopyInRead()
    {
        long latest = 0;
        foreach (var (block, host) in _gathered)
        {
            if (_inFlightInHosts.TryGetValue(host, out var fence) && fence > _passedFence)
            {
                latest = Math.Max(latest, fence);
            }

            if (_inFlightInBlocks.TryGetValue(block, out fence) && fence > _passedFence)
            {
                latest = Math.Max(latest, fence);
            }
        }

        if (latest == 0)
        {
            return null;
        }

        foreach (var (fence, cudaEvent) in _copyInFences)
        {
            if (fence == latest)
            {
                return cudaEvent;
            }
        }

        return null;
    }

    /// <summary>One copy per pool of <paramref name="run"/>: pitched on the host side when it holds more than one block.</summary>
    private void QueueRun(BlockCopyRun run, bool toDevice, IntPtr stream)
    {
        long offset = 0;
        for (var slot = 0; slot < _pools.Length; slot++)
        {
            var bytes = PoolBlockBytes(slot);
            if (bytes == 0)
            {
                continue;
            }

            var device = _pools[slot] + (nint)(run.FirstBlock * bytes);
            var host = run.Host + (nint)offset;
            if (run.Count == 1)
            {
                CudaRuntime.CopyAsync(toDevice ? device : host, toDevice ? host : device, bytes, toDevice, stream);
            }
            else if (toDevice)
            {
                CudaRuntime.Copy2DAsync(device, bytes, host, run.HostPitch, bytes, run.Count, toDevice: true, stream);
            }
            else
            {
                CudaRuntime.Copy2DAsync(host, run.HostPitch, device, bytes, bytes, run.Count, toDevice: false, stream);
            }

            offset += bytes;
        }
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
        var blockBytes = TransferBlockBytes;
        if (length != blockBytes)
        {
            throw new ArgumentException($"Span has {length} bytes; a block has {blockBytes}.", nameof(length));
        }
    }
}
