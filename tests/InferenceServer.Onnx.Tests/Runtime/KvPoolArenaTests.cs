// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>
/// <see cref="KvPoolArena"/>: the paged CUDA runner's pools in one allocation, and the pitched copies that move one block
/// of all of them. The copies are played here with <c>cudaMemcpy2D</c>'s rule over byte arrays (row r from
/// source + r x source pitch to destination + r x destination pitch) and must move exactly what one copy per pool
/// (the runner's synchronous path) moves, both ways, without touching another block.
/// </summary>
public sealed class KvPoolArenaTests
{
    private const long Unlimited = long.MaxValue;

    [Fact]
    public void LikeLayers_AreOneCallPerBlock()
    {
        var arena = KvPoolArena.Plan([.. Enumerable.Repeat(512L * 1024, 64)], blocks: 33, Unlimited);

        var run = Assert.Single(arena.Runs);
        Assert.Equal(new KvPoolArena.Run(0, 64, 512 * 1024, 33L * 512 * 1024, 0, 0, 512 * 1024), run);
        Assert.Equal(64L * 33 * 512 * 1024, arena.TotalBytes);
        Assert.Equal(63L * 33 * 512 * 1024, arena.Offset(63));
    }

    [Fact]
    public void LatentLayers_SkipTheMissingValuePools_AndStayOneRun()
    {
        long[] pools = [640, 0, 640, 0, 640, 0];
        var arena = KvPoolArena.Plan(pools, blocks: 4, Unlimited);

        Assert.Equal(new KvPoolArena.Run(0, 3, 640, 2560, 0, 0, 640), Assert.Single(arena.Runs));
        Assert.Equal([0L, -1, 2560, -1, 5120, -1], Enumerable.Range(0, 6).Select(arena.Offset));
        AssertCopiesMatchOneCopyPerPool(pools, 4, Unlimited);
    }

    [Fact]
    public void KeysAndValuesOfOtherWidths_AreTwoRuns_WhateverTheLayers()
    {
        // The gather-form MLA layers: a latent pool and a narrower rope-key pool a layer. Keys lie together on the device,
        // values after them; on the host each kind's runs are one layer (640 + 160 bytes) apart.
        long[] pools = [640, 160, 640, 160, 640, 160];
        var arena = KvPoolArena.Plan(pools, blocks: 4, Unlimited);

        Assert.Equal(
            [new KvPoolArena.Run(0, 3, 640, 2560, 0, 0, 800), new KvPoolArena.Run(1, 3, 160, 768, 7680, 640, 800)],
            arena.Runs);
        Assert.Equal([0L, 7680, 2560, 8448, 5120, 9216], Enumerable.Range(0, 6).Select(arena.Offset));
        AssertCopiesMatchOneCopyPerPool(pools, 4, Unlimited);
    }

    [Fact]
    public void PoolsOfOtherSizes_StartRunsOfTheirOwn()
    {
        // A pruned model: layer 1 has fewer KV heads. Its two pools are a run of their own; layers 0 and 2 lie together on
        // the device but not evenly spaced on the host (layer 1 between them), so they are two runs.
        long[] pools = [1024, 1024, 512, 512, 1024, 1024];
        var arena = KvPoolArena.Plan(pools, blocks: 3, Unlimited);

        Assert.Equal(
            [new KvPoolArena.Run(0, 2, 1024, 3072, 0, 0, 1024), new KvPoolArena.Run(4, 2, 1024, 3072, 6144, 3072, 1024), new KvPoolArena.Run(2, 2, 512, 1536, 12288, 2048, 512)],
            arena.Runs);
        AssertCopiesMatchOneCopyPerPool(pools, 3, Unlimited);

        // Blocks of 96 and 100 bytes pad to the same pitch and are still two runs: a row is one width.
        Assert.Equal([96L, 100], KvPoolArena.Plan([96, 100], blocks: 1, Unlimited).Runs.Select(r => r.BlockBytes));
        AssertCopiesMatchOneCopyPerPool([96, 100], 1, Unlimited);
    }

    [Fact]
    public void PoolStarts_AreAligned_AndTheRunsPitchCoversThePadding()
    {
        // 3 blocks of 100 bytes: 300 bytes, padded to 512.
        long[] pools = [100, 100, 100];
        var arena = KvPoolArena.Plan(pools, blocks: 3, Unlimited);

        Assert.Equal([0L, 512, 1024], Enumerable.Range(0, 3).Select(arena.Offset));
        Assert.Equal(1536, arena.TotalBytes);
        Assert.Equal(new KvPoolArena.Run(0, 3, 100, 512, 0, 0, 100), Assert.Single(arena.Runs));
        AssertCopiesMatchOneCopyPerPool(pools, 3, Unlimited);
    }

    [Fact]
    public void APitchOverTheDevicesLimit_LeavesEachPoolARunOfItsOwn()
    {
        long[] pools = [1024, 1024, 1024];
        var arena = KvPoolArena.Plan(pools, blocks: 8, maxPitch: 4096);

        Assert.Equal([1, 1, 1], arena.Runs.Select(r => r.Pools));
        Assert.Equal([0L, 8192, 16384], arena.Runs.Select(r => r.DeviceOffset));
        AssertCopiesMatchOneCopyPerPool(pools, 8, maxPitch: 4096);

        // At the limit exactly, the pitch is allowed.
        Assert.Single(KvPoolArena.Plan(pools, blocks: 4, maxPitch: 4096).Runs);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void MixedLayouts_CopyWhatOneCopyPerPoolCopies(int seed)
    {
        var random = new Random(seed);
        var pools = Enumerable.Range(0, 2 * random.Next(1, 9)).Select(_ => (long)(new[] { 0, 96, 256, 320, 1000 }[random.Next(5)])).ToArray();
        pools[0] = 320;
        AssertCopiesMatchOneCopyPerPool(pools, random.Next(1, 6), random.Next(2) == 0 ? Unlimited : 2048);
    }

    [Fact]
    public void BadLayouts_AreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => KvPoolArena.Plan([1024], blocks: 0, Unlimited));
        Assert.Throws<ArgumentOutOfRangeException>(() => KvPoolArena.Plan([1024, -1], blocks: 2, Unlimited));
        Assert.Throws<OverflowException>(() => KvPoolArena.Plan([long.MaxValue / 2], blocks: 3, Unlimited));
    }

    /// <summary>
    /// Every block copied out through the runs equals the pools' runs one after another (what the runner's one copy per pool
    /// makes); copied back into another block through the runs, it lands where one copy per pool puts it and nowhere else.
    /// </summary>
    private static void AssertCopiesMatchOneCopyPerPool(long[] pools, int blocks, long maxPitch)
    {
        var arena = KvPoolArena.Plan(pools, blocks, maxPitch);
        var slotBytes = pools.Sum();
        // Pools lie inside the arena, aligned, each ending before the next one (in the arena's order) starts.
        var placed = Enumerable.Range(0, pools.Length).Where(p => pools[p] > 0).OrderBy(arena.Offset).ToList();
        for (var i = 0; i < placed.Count; i++)
        {
            var pool = placed[i];
            Assert.True(arena.Offset(pool) % KvPoolArena.Alignment == 0);
            var next = i + 1 < placed.Count ? arena.Offset(placed[i + 1]) : arena.TotalBytes;
            Assert.True(arena.Offset(pool) + (blocks * pools[pool]) <= next, $"pool {pool} overlaps the next");
        }

        foreach (var run in arena.Runs)
        {
            Assert.True(run.Pitch <= maxPitch || run.Pools == 1);
        }

        var device = new byte[arena.TotalBytes];
        new Random(7).NextBytes(device);
        for (var block = 0; block < blocks; block++)
        {
            // One copy per pool, as the synchronous path does.
            var expected = new byte[slotBytes];
            long host = 0;
            foreach (var pool in Enumerable.Range(0, pools.Length).Where(p => pools[p] > 0))
            {
                Array.Copy(device, arena.Offset(pool) + (block * pools[pool]), expected, host, pools[pool]);
                host += pools[pool];
            }

            var slot = new byte[slotBytes];
            foreach (var run in arena.Runs)
            {
                Copy2D(slot, run.HostOffset, run.HostPitch, device, run.DeviceOffset + (block * run.BlockBytes), run.Pitch, run.BlockBytes, run.Pools);
            }

            Assert.Equal(expected, slot);

            // Back into block (block + 1) % blocks of a copy of the arena: only that block's bytes change, to the slot's.
            var target = (block + 1) % blocks;
            var before = (byte[])device.Clone();
            var after = (byte[])device.Clone();
            var changed = slot.Select(b => (byte)~b).ToArray();
            foreach (var run in arena.Runs)
            {
                Copy2D(after, run.DeviceOffset + (target * run.BlockBytes), run.Pitch, changed, run.HostOffset, run.HostPitch, run.BlockBytes, run.Pools);
            }

            host = 0;
            foreach (var pool in Enumerable.Range(0, pools.Length).Where(p => pools[p] > 0))
            {
                var at = arena.Offset(pool) + (target * pools[pool]);
                Array.Copy(changed, host, before, at, pools[pool]);
                host += pools[pool];
            }

            Assert.Equal(before, after);
        }
    }

    /// <summary><c>cudaMemcpy2D</c>'s rule: <paramref name="rows"/> rows of <paramref name="width"/> bytes, each pitch apart on its side.</summary>
    private static void Copy2D(byte[] destination, long destinationOffset, long destinationPitch, byte[] source, long sourceOffset, long sourcePitch, long width, int rows)
    {
        Assert.True(width <= destinationPitch && width <= sourcePitch);
        for (var row = 0; row < rows; row++)
        {
            Array.Copy(source, sourceOffset + (row * sourcePitch), destination, destinationOffset + (row * destinationPitch), width);
        }
    }
}
