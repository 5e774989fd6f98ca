using InferenceServer.Engine.KvCache;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Engine.Tests.KvCache;

/// <summary>
/// <see cref="HostKvTier"/>'s bookkeeping over a store of byte blocks: owned slots are never evicted, cached prefix
/// blocks go least recently used first, lookups verify the tokens, and the bytes copied back are the bytes copied out.
/// </summary>
public sealed class HostKvTierTests
{
    private const int BlockSize = 4;

    [Fact]
    public void SwapOutAndIn_CopiesTheBlockBytes_AndReleaseFreesTheSlots()
    {
        var store = new ByteStore(8, 16);
        using var tier = new HostKvTier(2, BlockSize, store);
        store.Fill(3, 42);
        var owned = new List<int>();
        Assert.True(tier.TrySwapOut(new BlockId(3), owned));
        Assert.True(tier.TrySwapOut(new BlockId(3), owned));
        Assert.False(tier.TrySwapOut(new BlockId(3), owned));
        Assert.Equal(2, tier.OwnedSlots);

        tier.SwapIn(owned[0], new BlockId(6));
        Assert.Equal(store.Block(3), store.Block(6));
        Assert.Equal((2, 1), (tier.SwappedOut, tier.SwappedIn));
        tier.Release(owned);
        Assert.Empty(owned);
        Assert.Equal(0, tier.OwnedSlots);
    }

    [Fact]
    public void TheTimeInsideTheRunnersCopyCalls_IsCountedBothWays()
    {
        // inference_kv_copy_calls_seconds_total: on a GPU the time to queue the copies, during which no step runs (ADR 0009).
        var store = new ByteStore(8, 16) { CopyTime = TimeSpan.FromMilliseconds(20) };
        using var tier = new HostKvTier(4, BlockSize, store);
        Assert.Equal(0, tier.CopyCallSeconds);
        var owned = new List<int>();
        Assert.True(tier.TrySwapOut(new BlockId(1), owned));
        var afterOut = tier.CopyCallSeconds;
        Assert.InRange(afterOut, 0.019, 5);
        tier.SwapIn(owned[0], new BlockId(2));
        Assert.InRange(tier.CopyCallSeconds, afterOut + 0.019, 10);

        // Demotions and promotions too.
        var before = tier.CopyCallSeconds;
        tier.Demote(new BlockId(3), 7, [1, 2, 3, 4]);
        tier.Promote(tier.Find(7, [1, 2, 3, 4]), new BlockId(4));
        Assert.InRange(tier.CopyCallSeconds, before + 0.039, 20);
    }

    [Fact]
    public void TheStepsWaitForCopiesOut_IsTheRunnersCount()
    {
        // inference_kv_copy_out_wait_seconds_total: a CUDA runner's steps wait for queued copies out (ADR 0009); the tier
        // reports what its runner counted.
        var store = new ByteStore(8, 16);
        using var tier = new HostKvTier(4, BlockSize, store);
        Assert.Equal(0, tier.CopyOutWaitSeconds);
        store.CopyOutWaitSeconds = 0.25;
        Assert.Equal(0.25, tier.CopyOutWaitSeconds);
    }

    [Fact]
    public void CachedBlocks_AreEvictedLeastRecentlyUsedFirst_OwnedNever()
    {
        var store = new ByteStore(8, 16);
        using var tier = new HostKvTier(3, BlockSize, store);
        int[] a = [1, 2, 3, 4], b = [5, 6, 7, 8], c = [9, 10, 11, 12];
        store.Fill(0, 1);
        store.Fill(1, 2);
        tier.Demote(new BlockId(0), 100, a);
        tier.Demote(new BlockId(1), 200, b);

        // A hit makes 100 the most recently used; then an owned slot takes the third and a new prefix evicts 200.
        var slot = tier.Find(100, a);
        Assert.True(slot >= 0);
        tier.Promote(slot, new BlockId(5));
        Assert.Equal(store.Block(0), store.Block(5));
        var owned = new List<int>();
        Assert.True(tier.TrySwapOut(new BlockId(2), owned));
        tier.Demote(new BlockId(2), 300, c);
        Assert.True(tier.Find(200, b) < 0);
        var kept = tier.Find(100, a);
        Assert.True(kept >= 0);
        tier.Promote(kept, null);

        // Owned slots stay when everything else is taken: a swap-out that finds only owned slots fails.
        Assert.True(tier.TrySwapOut(new BlockId(3), owned));
        Assert.True(tier.TrySwapOut(new BlockId(3), owned));
        Assert.False(tier.TrySwapOut(new BlockId(3), owned));
        Assert.Equal(3, tier.OwnedSlots);
        Assert.Equal(0, tier.CachedSlots);
        Assert.Equal(1, tier.PrefixHits);
    }

    [Fact]
    public void Find_WithOtherTokensUnderTheSameHash_Misses()
    {
        var store = new ByteStore(4, 16);
        using var tier = new HostKvTier(2, BlockSize, store);
        tier.Demote(new BlockId(0), 7, [1, 2, 3, 4]);
        Assert.True(tier.Find(7, [1, 2, 3, 5]) < 0);
        Assert.Equal((2, 0), (tier.PrefixQueries + 1, tier.PrefixHits));
    }

    [Fact]
    public void Demote_OfAHashAlreadyThere_CopiesNothing()
    {
        var store = new ByteStore(4, 16);
        using var tier = new HostKvTier(2, BlockSize, store);
        tier.Demote(new BlockId(0), 7, [1, 2, 3, 4]);
        tier.Demote(new BlockId(1), 7, [1, 2, 3, 4]);
        Assert.Equal(1, tier.CachedSlots);
        Assert.Equal(1, store.CopiesOut);
    }

    [Fact]
    public void TheArena_IsPinnedWhereTheRunnerOffers_EveryCopyUsesThePinnedBytes_AndThePinIsReleasedOnDispose()
    {
        var plain = new ByteStore(4, 16);
        using (var unpinned = new HostKvTier(2, BlockSize, plain))
        {
            Assert.False(unpinned.Pinned);
        }

        var store = new ByteStore(4, 16, offersPin: true);
        var tier = new HostKvTier(3, BlockSize, store);
        Assert.True(tier.Pinned);
        Assert.Equal(3 * 16, store.PinnedBytes);
        store.Fill(1, 9);
        var owned = new List<int>();
        Assert.True(tier.TrySwapOut(new BlockId(1), owned));
        tier.Demote(new BlockId(0), 5, [1, 2, 3, 4]);
        tier.SwapIn(owned[0], new BlockId(2));
        Assert.Equal(store.Block(1), store.Block(2));
        Assert.Equal((3, 0), (store.CopiesInPinnedBytes, store.CopiesOutsidePinnedBytes));
        Assert.False(store.PinReleased);
        tier.Dispose();
        Assert.True(store.PinReleased);
    }

    /// <summary>Blocks of bytes in managed memory: the copy contract without a model.</summary>
    private sealed unsafe class ByteStore(int blocks, int blockBytes, bool offersPin = false) : IKvBlockTransfer
    {
        private readonly byte[] _bytes = new byte[blocks * blockBytes];
        private IntPtr _pinStart;

        public int BlockBytes => blockBytes;

        public IReadOnlyList<KvPoolRange> Pools => [new KvPoolRange("test", 0, blocks)];

        public int CopiesOut { get; private set; }

        public long PinnedBytes { get; private set; }

        public int CopiesInPinnedBytes { get; private set; }

        public int CopiesOutsidePinnedBytes { get; private set; }

        public bool PinReleased { get; private set; }

        /// <summary>How long each copy takes (a runner whose copy calls wait).</summary>
        public TimeSpan CopyTime { get; set; }

        public double CopyOutWaitSeconds { get; set; }

        public void CopyIn(int block, ReadOnlySpan<byte> source)
        {
            Thread.Sleep(CopyTime);
            CountPinned(source);
            source.CopyTo(_bytes.AsSpan(block * blockBytes, blockBytes));
        }

        public void CopyOut(int block, Span<byte> destination)
        {
            Thread.Sleep(CopyTime);
            CountPinned(destination);
            CopiesOut++;
            _bytes.AsSpan(block * blockBytes, blockBytes).CopyTo(destination);
        }

        public IDisposable? PinHost(IntPtr pointer, long bytes)
        {
            if (!offersPin)
            {
                return null;
            }

            (_pinStart, PinnedBytes) = (pointer, bytes);
            return new Release(this);
        }

        public void Fill(int block, byte value) => _bytes.AsSpan(block * blockBytes, blockBytes).Fill(value);

        public byte[] Block(int block) => _bytes.AsSpan(block * blockBytes, blockBytes).ToArray();

        private void CountPinned(ReadOnlySpan<byte> host)
        {
            fixed (byte* start = host)
            {
                var inside = _pinStart != IntPtr.Zero && !PinReleased && start >= (byte*)_pinStart && start + host.Length <= (byte*)_pinStart + PinnedBytes;
                CopiesInPinnedBytes += inside ? 1 : 0;
                CopiesOutsidePinnedBytes += inside ? 0 : 1;
            }
        }

        private sealed class Release(ByteStore store) : IDisposable
        {
            public void Dispose() => store.PinReleased = true;
        }
    }
}
