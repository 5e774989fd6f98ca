using InferenceServer.Engine.KvCache;

namespace InferenceServer.Engine.Tests.KvCache;

public sealed class KvCacheManagerTests
{
    [Fact]
    public void AllocateAndRelease_RestoresThePool()
    {
        var kv = new KvCacheManager(8, 4);
        var table = new List<BlockId>();
        Assert.True(kv.TryAllocate(5, table));
        Assert.Equal(3, kv.FreeBlockCount);
        Assert.False(kv.TryAllocate(4, table));
        Assert.Equal(5, table.Count);
        kv.Release(table);
        Assert.Empty(table);
        Assert.Equal(8, kv.FreeBlockCount);
    }

    [Fact]
    public void TwoPools_TheFirstFillsFirst_EvenAfterItsBlocksWereFreed()
    {
        // Pools [0, 4) and [4, 8), the first device's first: a single LRU free list would hand out 3, 4, 5, 6 after the
        // first three blocks come back (never-used blocks of the second pool come before the freed ones).
        var kv = new KvCacheManager(8, 4);
        var placement = KvPlacementPolicy.FromPools([new("cuda:0", 0, 4), new("cpu", 4, 4)]);
        kv.SetPools([4, 4], placement);
        var table = new List<BlockId>();
        Assert.True(kv.TryAllocate(3, table));
        Assert.Equal([0, 1, 2], table.Select(b => b.Value));
        kv.Release(table);
        Assert.True(kv.TryAllocate(4, table));
        Assert.All(table, b => Assert.InRange(b.Value, 0, 3));
        Assert.Equal(4, kv.PoolUsedBlocks(0));
        Assert.Equal(0, kv.PoolUsedBlocks(1));

        // Once the first is full the next block spans into the second; freeing one in the first sends the next back there.
        var more = new List<BlockId>();
        Assert.True(kv.TryAllocate(2, more));
        Assert.All(more, b => Assert.InRange(b.Value, 4, 7));
        var one = new List<BlockId> { table[1] };
        table.RemoveAt(1);
        kv.Release(one);
        Assert.True(kv.TryAllocate(1, more));
        Assert.InRange(more[^1].Value, 0, 3);
        Assert.Equal(4, kv.PoolUsedBlocks(0));
        Assert.Equal(2, kv.PoolUsedBlocks(1));
        Assert.False(kv.TryAllocate(3, more));
        Assert.True(kv.TryAllocate(2, more));
        Assert.Equal(0, kv.FreeBlockCount);
    }

    [Fact]
    public void SetPools_CountsThatDoNotCoverTheCache_Throw()
    {
        var kv = new KvCacheManager(8, 4);
        Assert.Throws<ArgumentException>(() => kv.SetPools([4, 3]));
        Assert.Throws<ArgumentException>(() => kv.SetPools([4, 4], KvPlacementPolicy.FromPools([new("cpu", 0, 8)])));
    }

    [Fact]
    public void FullBlocks_AreReusedByALaterRequestWithTheSamePrefix()
    {
        var kv = new KvCacheManager(16, 4);
        int[] tokens = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        var first = new List<BlockId>();
        var firstHashes = new List<ulong>();
        Assert.True(kv.TryAllocate(kv.BlocksFor(tokens.Length), first));
        kv.CommitFullBlocks(tokens, tokens.Length, first, firstHashes);
        Assert.Equal(2, firstHashes.Count);

        var second = new List<BlockId>();
        var secondHashes = new List<ulong>();
        int[] sharing = [1, 2, 3, 4, 5, 6, 7, 8, 42, 43];
        Assert.Equal(8, kv.AcquireCachedPrefix(sharing, second, secondHashes));
        Assert.Equal(first.Take(2), second);
        Assert.Equal(2, kv.RefCount(second[0]));

        kv.Release(first);
        kv.Release(second);
        Assert.Equal(16, kv.FreeBlockCount);

        // Freed blocks still serve the prefix until they are reused.
        var third = new List<BlockId>();
        Assert.Equal(8, kv.AcquireCachedPrefix(tokens, third, []));
        kv.Release(third);
        Assert.Equal(16, kv.FreeBlockCount);
        Assert.Equal(2 + 2, kv.PrefixHits);
    }

    [Fact]
    public void LastToken_IsNeverServedFromCache()
    {
        var kv = new KvCacheManager(8, 4);
        int[] tokens = [1, 2, 3, 4, 5, 6, 7, 8];
        var table = new List<BlockId>();
        var hashes = new List<ulong>();
        kv.TryAllocate(2, table);
        kv.CommitFullBlocks(tokens, 8, table, hashes);
        kv.Release(table);
        var again = new List<BlockId>();
        Assert.Equal(4, kv.AcquireCachedPrefix(tokens, again, []));
        kv.Release(again);
    }

    [Fact]
    public void DifferentParent_DoesNotMatch()
    {
        var kv = new KvCacheManager(8, 2);
        var table = new List<BlockId>();
        var hashes = new List<ulong>();
        kv.TryAllocate(2, table);
        kv.CommitFullBlocks([1, 2, 3, 4], 4, table, hashes);
        kv.Release(table);
        var other = new List<BlockId>();
        Assert.Equal(0, kv.AcquireCachedPrefix([9, 9, 3, 4, 5], other, []));
    }

    [Fact]
    public void EvictionReusesLeastRecentlyFreedFirst()
    {
        var kv = new KvCacheManager(4, 2);
        var a = new List<BlockId>();
        var b = new List<BlockId>();
        kv.TryAllocate(2, a);
        kv.TryAllocate(2, b);
        kv.CommitFullBlocks([1, 2, 3, 4], 4, a, []);
        kv.CommitFullBlocks([5, 6, 7, 8], 4, b, []);
        kv.Release(a);
        kv.Release(b);

        // Taking two blocks evicts a's (freed first); b's prefix survives.
        var c = new List<BlockId>();
        kv.TryAllocate(2, c);
        Assert.Equal(0, kv.AcquireCachedPrefix([1, 2, 3, 4, 0], new List<BlockId>(), []));
        var d = new List<BlockId>();
        Assert.Equal(4, kv.AcquireCachedPrefix([5, 6, 7, 8, 0], d, []));
        kv.Release(c);
        kv.Release(d);
        Assert.Equal(4, kv.FreeBlockCount);
    }
}
