// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Engine.KvCache;

/// <summary>
/// The host KV tier (ADR 0009, <c>--host-kv-cache-memory</c>): slots of host memory (<see cref="HostBlockArena"/>), one KV
/// block each, that are free, <em>owned</em> by a preempted sequence (its swapped-out blocks, never evicted, given back
/// when it resumes, finishes or is cancelled) or <em>cached</em> under a prefix-block hash with the block's tokens (the
/// prefix cache's second level, evicted least recently used first when a slot is needed). The runner's
/// <see cref="IKvBlockTransfer"/> moves the bytes. Owned by the scheduler loop; its counters may be read from any thread.
/// </summary>
internal sealed class HostKvTier : IDisposable
{
    private const int None = -1;

    private readonly HostBlockArena _arena;
    private readonly IDisposable? _pin;
    private readonly IKvBlockTransfer _transfer;
    private readonly int _blockSize;
    private readonly int[] _tokens;
    private readonly ulong[] _hashes;
    private readonly IndexList _lru;
    private readonly Stack<int> _free;
    private readonly Dictionary<ulong, int> _byHash = [];
    private int _owned;
    private long _prefixQueries;
    private long _prefixHits;
    private long _swappedOut;
    private long _swappedIn;
    private long _copyCallTicks;

    /// <summary>Creates a tier of <paramref name="slotCount"/> blocks of <paramref name="blockSize"/> tokens over <paramref name="transfer"/>'s blocks.</summary>
    public HostKvTier(int slotCount, int blockSize, IKvBlockTransfer transfer)
    {
        ArgumentNullException.ThrowIfNull(transfer);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        _arena = new HostBlockArena(slotCount, transfer.BlockBytes);
        _transfer = transfer;
        _pin = transfer.PinHost(_arena.Start, _arena.Bytes);
        _blockSize = blockSize;
        _tokens = new int[slotCount * blockSize];
        _hashes = new ulong[slotCount];
        _lru = new IndexList(slotCount);
        _free = new Stack<int>(slotCount);
        for (var i = slotCount - 1; i >= 0; i--)
        {
            _free.Push(i);
        }
    }

    /// <summary>
    /// Slots that <paramref name="bytes"/> of host memory hold at <paramref name="blockBytes"/> each; 0 when
    /// <paramref name="bytes"/> is 0 (the tier is off).
    /// </summary>
    public static int SlotsFor(long bytes, int blockBytes) => (int)Math.Min(int.MaxValue / 2, bytes / Math.Max(1, blockBytes));

    /// <summary>Slots (blocks) in the tier.</summary>
    public int SlotCount => _arena.SlotCount;

    /// <summary>Bytes of one slot.</summary>
    public int BlockBytes => _arena.SlotBytes;

    /// <summary>Whether the runner page-locked the tier's memory (<see cref="IKvBlockTransfer.PinHost"/>): its copies are then queued, not waited for one by one.</summary>
    public bool Pinned => _pin is not null;

    /// <summary>Slots owned by preempted sequences (the tier's blocks in use).</summary>
    public int OwnedSlots => Volatile.Read(ref _owned);

    /// <summary>Slots holding a cached prefix block.</summary>
    public int CachedSlots => _byHash.Count;

    /// <summary>Prefix-cache lookups that missed on the device and asked this tier, in blocks.</summary>
    public long PrefixQueries => Interlocked.Read(ref _prefixQueries);

    /// <summary>Of <see cref="PrefixQueries"/>, those this tier served.</summary>
    public long PrefixHits => Interlocked.Read(ref _prefixHits);

    /// <summary>Blocks copied out for preempted sequences.</summary>
    public long SwappedOut => Interlocked.Read(ref _swappedOut);

    /// <summary>Blocks copied back in for resumed sequences.</summary>
    public long SwappedIn => Interlocked.Read(ref _swappedIn);

    /// <summary>
    /// Seconds the scheduler thread spent inside the runner's copy calls, both ways: the copies themselves where they are
    /// synchronous, the time to queue them where they are not (a CUDA stream holds a bounded number of pending copies, and
    /// a call that finds it full waits; ADR 0009's lead for the concurrency-4 gap). No step runs meanwhile.
    /// </summary>
    public double CopyCallSeconds => Interlocked.Read(ref _copyCallTicks) / (double)Stopwatch.Frequency;

    /// <summary>Seconds the runner's steps waited for this tier's queued copies out before running (<see cref="IKvBlockTransfer.CopyOutWaitSeconds"/>).</summary>
    public double CopyOutWaitSeconds => _transfer.CopyOutWaitSeconds;

    /// <summary>
    /// Copies device block <paramref name="block"/> into a slot owned by the caller (a preempted sequence) and appends the
    /// slot to <paramref name="owned"/>; false when every slot is owned.
    /// </summary>
    public bool TrySwapOut(BlockId block, List<int> owned)
    {
        if (!TryTakeSlot(out var slot))
        {
            return false;
        }

        CopyOut(block, slot);
        owned.Add(slot);
        Interlocked.Increment(ref _owned);
        Interlocked.Increment(ref _swappedOut);
        return true;
    }

    /// <summary>Copies owned slot <paramref name="slot"/> into device block <paramref name="block"/>; the slot stays owned.</summary>
    public void SwapIn(int slot, BlockId block)
    {
        CopyIn(slot, block);
        Interlocked.Increment(ref _swappedIn);
    }

    /// <summary>A fence after the copy-ins asked for so far (<see cref="IKvBlockTransfer.CopyInFence"/>); 0 when they have finished.</summary>
    public long CopyInFence() => _transfer.CopyInFence();

    /// <summary>Whether the copy-ins before <paramref name="fence"/> have finished (true for 0).</summary>
    public bool CopyInDone(long fence) => fence == 0 || _transfer.CopyInDone(fence);

    /// <summary>Waits for the copy-ins before <paramref name="fence"/> (nothing for 0).</summary>
    public void WaitCopyIn(long fence)
    {
        if (fence != 0)
        {
            _transfer.WaitCopyIn(fence);
        }
    }

    /// <summary>Frees every slot in <paramref name="owned"/> and clears it.</summary>
    public void Release(List<int> owned)
    {
        foreach (var slot in owned)
        {
            _free.Push(slot);
        }

        Interlocked.Add(ref _owned, -owned.Count);
        owned.Clear();
    }

    /// <summary>
    /// Keeps a copy of device block <paramref name="block"/>, about to be reused, under <paramref name="hash"/> with its
    /// <paramref name="tokens"/> (the prefix cache's second level). Nothing happens when the tier has that hash already (it
    /// is inclusive: the copy is still valid) or every slot is owned.
    /// </summary>
    public void Demote(BlockId block, ulong hash, ReadOnlySpan<int> tokens)
    {
        if (_byHash.TryGetValue(hash, out var known))
        {
            Touch(known);
            return;
        }

        if (!TryTakeSlot(out var slot))
        {
            return;
        }

        CopyOut(block, slot);
        tokens.CopyTo(_tokens.AsSpan(slot * _blockSize, _blockSize));
        _hashes[slot] = hash;
        _byHash[hash] = slot;
        _lru.Append(slot);
    }

    /// <summary>
    /// The slot holding prefix block <paramref name="hash"/> with exactly <paramref name="tokens"/>, or -1; counts a query.
    /// A slot found is taken out of the LRU order (so nothing evicts it) until <see cref="Promote"/> puts it back.
    /// </summary>
    public int Find(ulong hash, ReadOnlySpan<int> tokens)
    {
        Interlocked.Increment(ref _prefixQueries);
        if (!_byHash.TryGetValue(hash, out var slot) || !tokens.SequenceEqual(_tokens.AsSpan(slot * _blockSize, _blockSize)))
        {
            return None;
        }

        _lru.Remove(slot);
        return slot;
    }

    /// <summary>
    /// Copies slot <paramref name="slot"/> (from <see cref="Find"/>) into device block <paramref name="block"/> and counts a
    /// hit, or with no block only puts the slot back; either way it is then the most recently used.
    /// </summary>
    public void Promote(int slot, BlockId? block)
    {
        if (block is { } target)
        {
            CopyIn(slot, target);
            Interlocked.Increment(ref _prefixHits);
        }

        _lru.Append(slot);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _pin?.Dispose();
        _arena.Dispose();
    }

    private void CopyOut(BlockId block, int slot)
    {
        var started = Stopwatch.GetTimestamp();
        _transfer.CopyOut(block.Value, _arena.Slot(slot));
        Interlocked.Add(ref _copyCallTicks, Stopwatch.GetTimestamp() - started);
    }

    private void CopyIn(int slot, BlockId block)
    {
        var started = Stopwatch.GetTimestamp();
        _transfer.CopyIn(block.Value, _arena.Slot(slot));
        Interlocked.Add(ref _copyCallTicks, Stopwatch.GetTimestamp() - started);
    }

    private bool TryTakeSlot(out int slot)
    {
        if (_free.TryPop(out slot))
        {
            return true;
        }

        if (_lru.Head == IndexList.None)
        {
            return false;
        }

        slot = _lru.Head;
        _lru.Remove(slot);
        _byHash.Remove(_hashes[slot]);
        return true;
    }

    private void Touch(int slot)
    {
        _lru.Remove(slot);
        _lru.Append(slot);
    }
}
