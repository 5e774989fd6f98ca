// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.KvCache;

/// <summary>
/// Block accounting for the paged KV cache: a fixed pool of blocks (<see cref="BlockId"/>) of <see cref="BlockSize"/> tokens, reference counts,
/// a free list in least-recently-freed order, and a prefix cache that maps the hash of a full block's tokens (chained
/// with its parent block's hash) to the block that holds them. Free blocks keep their cached contents until they are
/// reused, so a later request with the same prefix finds them (evicted least recently used first).
/// The physical bytes live in the model runner's store; this class only decides which block holds what. With several
/// pools (<see cref="SetPools"/>: one per attention device of a split model) each pool has its own free list, and a new
/// block comes from the pool the <see cref="KvPlacementPolicy"/> picks (with no measurements: the first pool with room,
/// so the first device fills first, ADR 0005), its least recently freed block.
/// Owned by the scheduler loop; not thread-safe.
/// </summary>
internal sealed class KvCacheManager
{
    private readonly int[] _refCounts;
    private readonly ulong[] _hashes;
    private readonly bool[] _hashed;
    private readonly int[] _blockTokens;
    private IndexList[] _free;
    private KvPlacementPolicy? _placement;
    private readonly Dictionary<ulong, int> _cache = [];
    private int[] _poolOfBlock = [];
    private int[] _poolUsed = [0];

    // Per block, the host tier's copy-in fence while its bytes may still be arriving (0: loaded). A sequence that holds
    // such a block waits out of the steps; a block freed before its fence has passed is waited for first.
    private readonly long[] _loadFences;

    /// <summary>Creates a pool of <paramref name="blockCount"/> blocks of <paramref name="blockSize"/> tokens.</summary>
    public KvCacheManager(int blockCount, int blockSize, bool enablePrefixCaching = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        BlockCount = blockCount;
        BlockSize = blockSize;
        PrefixCachingEnabled = enablePrefixCaching;
        _refCounts = new int[blockCount];
        _loadFences = new long[blockCount];
        _hashes = new ulong[blockCount];
        _hashed = new bool[blockCount];
        _blockTokens = new int[blockCount * blockSize];
        var free = new IndexList(blockCount);
        for (var i = 0; i < blockCount; i++)
        {
            free.Append(i);
        }

        _free = [free];

        FreeBlockCount = blockCount;
    }

    /// <summary>Blocks in the pool.</summary>
    public int BlockCount { get; }

    /// <summary>Tokens per block.</summary>
    public int BlockSize { get; }

    /// <summary>Whether full blocks are shared between requests with the same prefix.</summary>
    public bool PrefixCachingEnabled { get; }

    /// <summary>Blocks with no owner (including those that still hold cached prefixes).</summary>
    public int FreeBlockCount { get; private set; }

    /// <summary>Blocks owned by at least one sequence.</summary>
    public int UsedBlockCount => BlockCount - FreeBlockCount;

    /// <summary>Prefix-cache lookups, in blocks, since start.</summary>
    public long PrefixQueries { get; private set; }

    /// <summary>Prefix-cache hits, in blocks, since start.</summary>
    public long PrefixHits { get; private set; }

    /// <summary>
    /// The host KV tier (ADR 0009), or null: prefix blocks the pool reuses are kept there, and a lookup that misses here
    /// asks it. Set once before the loop starts.
    /// </summary>
    public HostKvTier? HostTier { get; set; }

    /// <summary>
    /// Splits the blocks into pools: pool <c>i</c> holds the <paramref name="counts"/>[i] blocks after pool <c>i - 1</c>'s,
    /// with its own free list; <paramref name="placement"/> (over the same pools, in order) picks the pool of each new
    /// block, and without it the first pool with a free block gives it. Call before any block is taken; by default there
    /// is one pool.
    /// </summary>
    /// <exception cref="ArgumentException">The counts do not add up to the blocks, or the policy has another number of pools.</exception>
    public void SetPools(ReadOnlySpan<int> counts, KvPlacementPolicy? placement = null)
    {
        var total = 0;
        foreach (var count in counts)
        {
            total += count;
        }

        if (total != BlockCount || counts.Length == 0)
        {
            throw new ArgumentException($"Pools of {total} blocks in all for a cache of {BlockCount}.", nameof(counts));
        }

        if (placement is not null && placement.Pools.Count != counts.Length)
        {
            throw new ArgumentException($"A placement policy over {placement.Pools.Count} pools for {counts.Length}.", nameof(placement));
        }

        _poolOfBlock = new int[BlockCount];
        _poolUsed = new int[counts.Length];
        _free = new IndexList[counts.Length];
        var block = 0;
        for (var pool = 0; pool < counts.Length; pool++)
        {
            _free[pool] = new IndexList(BlockCount);
            for (var i = 0; i < counts[pool]; i++)
            {
                _poolOfBlock[block] = pool;
                _free[pool].Append(block++);
            }
        }

        _placement = placement;
    }

    /// <summary>Replaces the placement policy (new measurements) over the same pools; blocks already placed stay where they are.</summary>
    /// <exception cref="ArgumentException">The policy has another number of pools than <see cref="SetPools"/> made.</exception>
    public void SetPlacement(KvPlacementPolicy placement)
    {
        ArgumentNullException.ThrowIfNull(placement);
        var pools = _free.Length;
        if (placement.Pools.Count != pools)
        {
            throw new ArgumentException($"A placement policy over {placement.Pools.Count} pools for {pools}.", nameof(placement));
        }

        _placement = placement;
    }

    /// <summary>Blocks of pool <paramref name="pool"/> (<see cref="SetPools"/>) owned by sequences; read from any thread.</summary>
    public int PoolUsedBlocks(int pool) => Volatile.Read(ref _poolUsed[pool]);

    /// <summary>Blocks needed to hold <paramref name="tokens"/> tokens.</summary>
    public int BlocksFor(int tokens) => (tokens + BlockSize - 1) / BlockSize;

    /// <summary>
    /// Appends to <paramref name="blockTable"/> the cached blocks that hold a prefix of <paramref name="tokens"/>,
    /// taking a reference on each, and returns how many tokens they cover. The last token is never served from the cache,
    /// so that the model runs at least one position and yields logits.
    /// </summary>
    public int AcquireCachedPrefix(ReadOnlySpan<int> tokens, List<BlockId> blockTable, List<ulong> blockHashes)
    {
        LastAcquiredFence = 0;
        if (!PrefixCachingEnabled || blockTable.Count != 0)
        {
            return 0;
        }

        var full = (tokens.Length - 1) / BlockSize;
        var parent = 0UL;
        var fence = 0L;
        var promoted = -1;
        for (var b = 0; b < full; b++)
        {
            var chunk = tokens.Slice(b * BlockSize, BlockSize);
            var hash = Hash(parent, chunk);
            PrefixQueries++;
            if (!_cache.TryGetValue(hash, out var block) || !chunk.SequenceEqual(_blockTokens.AsSpan(block * BlockSize, BlockSize)))
            {
                if (!TryPromoteFromHost(hash, chunk, blockTable))
                {
                    // Count the remaining lookups as misses, as vLLM's prefix_cache_queries does per block.
                    PrefixQueries += full - b - 1;
                    break;
                }

                promoted = promoted < 0 ? blockTable.Count - 1 : promoted;
            }
            else
            {
                PrefixHits++;
                Retain(block);
                blockTable.Add(new BlockId(block));
                // A block another sequence is still loading from the tier: this one waits for it too.
                fence = Math.Max(fence, PendingFence(block));
            }

            blockHashes.Add(hash);
            parent = hash;
        }

        if (promoted >= 0)
        {
            fence = Math.Max(fence, MarkLoading(blockTable, promoted));
        }

        LastAcquiredFence = fence;
        return blockTable.Count * BlockSize;
    }

    /// <summary>
    /// The copy-in fence of the blocks the last <see cref="AcquireCachedPrefix"/> took (0 when their bytes are all there):
    /// the sequence stays out of the steps until <see cref="IsLoaded"/> says it has passed.
    /// </summary>
    public long LastAcquiredFence { get; private set; }

    /// <summary>
    /// Takes the host tier's fence for the copy-ins just asked for and records it on <paramref name="blockTable"/>'s blocks
    /// from <paramref name="first"/> on (the ones those copies fill); returns it (0 when the copies have finished).
    /// </summary>
    public long MarkLoading(List<BlockId> blockTable, int first)
    {
        var fence = HostTier?.CopyInFence() ?? 0;
        if (fence != 0)
        {
            for (var i = first; i < blockTable.Count; i++)
            {
                _loadFences[blockTable[i].Value] = fence;
            }
        }

        return fence;
    }

    /// <summary>Whether the copy-ins before <paramref name="fence"/> have finished (true for 0).</summary>
    public bool IsLoaded(long fence) => HostTier?.CopyInDone(fence) ?? true;

    /// <summary>Waits for the copy-ins before <paramref name="fence"/>.</summary>
    public void WaitLoaded(long fence) => HostTier?.WaitCopyIn(fence);

    /// <summary>The fence <paramref name="block"/> is still loading under, or 0 (cleared once passed).</summary>
    private long PendingFence(int block)
    {
        var fence = _loadFences[block];
        if (fence != 0 && IsLoaded(fence))
        {
            _loadFences[block] = 0;
            fence = 0;
        }

        return fence;
    }

    /// <summary>Takes <paramref name="count"/> free blocks onto <paramref name="blockTable"/>; false (and nothing taken) when too few are free.</summary>
    public bool TryAllocate(int count, List<BlockId> blockTable)
    {
        if (count > FreeBlockCount)
        {
            return false;
        }

        for (var i = 0; i < count; i++)
        {
            var list = _free[ChoosePool()];
            var block = list.Head;
            list.Remove(block);
            if (_hashed[block])
            {
                // The cached prefix leaves the device: the host tier keeps a copy (ADR 0009).
                HostTier?.Demote(new BlockId(block), _hashes[block], _blockTokens.AsSpan(block * BlockSize, BlockSize));
                _cache.Remove(_hashes[block]);
                _hashed[block] = false;
            }

            _refCounts[block] = 1;
            CountUsed(block, 1);
            FreeBlockCount--;
            blockTable.Add(new BlockId(block));
        }

        return true;
    }

    /// <summary>
    /// Whether the device prefix cache holds a block under <paramref name="hash"/> now: its bytes then stay findable by
    /// that hash until the block is reused, and on reuse they go to the host tier (<see cref="TryAllocate"/>'s demotion).
    /// </summary>
    public bool IsCached(ulong hash) => _cache.ContainsKey(hash);

    /// <summary>Reference count of <paramref name="block"/> (how many sequences hold it).</summary>
    public int RefCount(BlockId block) => _refCounts[block.Value];

    /// <summary>
    /// Registers the blocks of a sequence that became full since the last call, so that later requests can reuse them.
    /// <paramref name="blockHashes"/> holds the hashes of the blocks registered so far and grows with each full block.
    /// </summary>
    public void CommitFullBlocks(ReadOnlySpan<int> tokens, int computedTokens, List<BlockId> blockTable, List<ulong> blockHashes)
    {
        if (!PrefixCachingEnabled)
        {
            return;
        }

        var full = computedTokens / BlockSize;
        for (var b = blockHashes.Count; b < full; b++)
        {
            var parent = b == 0 ? 0UL : blockHashes[b - 1];
            var chunk = tokens.Slice(b * BlockSize, BlockSize);
            var hash = Hash(parent, chunk);
            blockHashes.Add(hash);
            var block = blockTable[b].Value;
            if (!_hashed[block] && _cache.TryAdd(hash, block))
            {
                _hashes[block] = hash;
                _hashed[block] = true;
                chunk.CopyTo(_blockTokens.AsSpan(block * BlockSize, BlockSize));
            }
        }
    }

    /// <summary>Drops one reference on every block of <paramref name="blockTable"/> (last block first) and clears it.</summary>
    public void Release(List<BlockId> blockTable)
    {
        for (var i = blockTable.Count - 1; i >= 0; i--)
        {
            var block = blockTable[i].Value;
            if (--_refCounts[block] == 0)
            {
                // Its bytes may still be arriving from the host tier: they must land before the block is reused.
                if (PendingFence(block) is var fence and not 0)
                {
                    WaitLoaded(fence);
                    _loadFences[block] = 0;
                }

                CountUsed(block, -1);
                _free[PoolOf(block)].Append(block);
                FreeBlockCount++;
            }
        }

        blockTable.Clear();
    }

    private void Retain(int block)
    {
        if (_refCounts[block]++ == 0)
        {
            CountUsed(block, 1);
            _free[PoolOf(block)].Remove(block);
            FreeBlockCount--;
        }
    }

    private int PoolOf(int block) => _poolOfBlock.Length == 0 ? 0 : _poolOfBlock[block];

    /// <summary>The pool of the next new block (one with a free block: the caller checked that some pool has one).</summary>
    private int ChoosePool()
    {
        if (_free.Length == 1)
        {
            return 0;
        }

        var pool = _placement?.Choose(_poolUsed) ?? -1;
        if (pool >= 0)
        {
            return pool;
        }

        for (var i = 0; i < _free.Length; i++)
        {
            if (_free[i].Head != IndexList.None)
            {
                return i;
            }
        }

        throw new InvalidOperationException("No pool has a free block.");
    }

    /// <summary>
    /// On a device miss, the host tier's copy of prefix block <paramref name="hash"/>: a free block is taken onto
    /// <paramref name="blockTable"/>, filled from the tier and registered here. False when the tier lacks it or no block is free.
    /// </summary>
    private bool TryPromoteFromHost(ulong hash, ReadOnlySpan<int> chunk, List<BlockId> blockTable)
    {
        if (HostTier is not { } tier || FreeBlockCount == 0)
        {
            return false;
        }

        var slot = tier.Find(hash, chunk);
        if (slot < 0)
        {
            return false;
        }

        // Taking the block may push another cached block to the tier; the slot found is out of its LRU order meanwhile.
        TryAllocate(1, blockTable);
        var block = blockTable[^1].Value;
        tier.Promote(slot, blockTable[^1]);
        _hashes[block] = hash;
        _hashed[block] = _cache.TryAdd(hash, block);
        chunk.CopyTo(_blockTokens.AsSpan(block * BlockSize, BlockSize));
        return true;
    }

    private void CountUsed(int block, int delta)
    {
        var pool = PoolOf(block);
        Volatile.Write(ref _poolUsed[pool], _poolUsed[pool] + delta);
    }

    /// <summary>A 64-bit chained hash of a block's tokens (SplitMix64 finalizer over each id).</summary>
    internal static ulong Hash(ulong parent, ReadOnlySpan<int> tokens)
    {
        unchecked
        {
            var h = parent ^ 0x9E3779B97F4A7C15UL;
            foreach (var token in tokens)
            {
                h ^= (uint)token;
                h *= 0xBF58476D1CE4E5B9UL;
                h ^= h >> 31;
            }

            h *= 0x94D049BB133111EBUL;
            return (h ^ (h >> 29)) | 1UL;
        }
    }
}
