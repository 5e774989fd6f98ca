// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;
using Xunit;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>
/// How the CUDA runner groups the host tier's queued block copies into pitched runs (ADR 0009): only where the device
/// blocks ascend by one and the host bytes keep one pitch of at least a block, and always in the order asked.
/// </summary>
public sealed class BlockCopyRunsTests
{
    private const long BlockBytes = 1024;

    [Fact]
    public void ConsecutiveBlocksAndSlots_AreOneRun()
    {
        var runs = Plan((10, 0), (11, 1024), (12, 2048), (13, 3072));

        Assert.Equal([new BlockCopyRun(10, 0, 1024, 4)], runs);
    }

    [Fact]
    public void APitchWiderThanABlock_StillMakesARun()
    {
        // Slots of a padded arena lie further apart than a block's bytes.
        var runs = Plan((4, 100), (5, 100 + 4096), (6, 100 + 8192));

        Assert.Equal([new BlockCopyRun(4, 100, 4096, 3)], runs);
    }

    [Fact]
    public void ABreakInBlocksOrPitch_StartsANewRun()
    {
        var runs = Plan(
            (0, 0), (1, 1024),          // a run of two
            (5, 2048),                  // the block jumps
            (6, 4096), (7, 5120),       // pitch 2048 then 1024: 5 and 6 pair, 7 does not follow at 2048
            (8, 6144));

        Assert.Equal(
            [
                new BlockCopyRun(0, 0, 1024, 2),
                new BlockCopyRun(5, 2048, 2048, 2),
                new BlockCopyRun(7, 5120, 1024, 2),
            ],
            runs);
    }

    [Fact]
    public void DescendingOrOverlappingHostBytes_AreCopiedOneByOne()
    {
        // Slots handed out in descending order, and host spans closer than a block (they would overlap): no pitched copy.
        var runs = Plan((1, 4096), (2, 3072), (3, 3072 + 512));

        Assert.Equal(
            [new BlockCopyRun(1, 4096, 0, 1), new BlockCopyRun(2, 3072, 0, 1), new BlockCopyRun(3, 3072 + 512, 0, 1)],
            runs);
    }

    [Fact]
    public void DescendingBlocks_AreCopiedOneByOne()
    {
        var runs = Plan((9, 0), (8, 1024), (7, 2048));

        Assert.Equal([new BlockCopyRun(9, 0, 0, 1), new BlockCopyRun(8, 1024, 0, 1), new BlockCopyRun(7, 2048, 0, 1)], runs);
    }

    [Fact]
    public void NoCopies_NoRuns() => Assert.Empty(Plan());

    [Fact]
    public void ABlockSizeOfZero_IsRefused()
        => Assert.Throws<ArgumentOutOfRangeException>(() => BlockCopyRuns.Plan([], 0, []));

    private static List<BlockCopyRun> Plan(params (int Block, long Host)[] copies)
    {
        var runs = new List<BlockCopyRun>();
        BlockCopyRuns.Plan([.. copies.Select(static c => (c.Block, (IntPtr)c.Host))], BlockBytes, runs);
        return runs;
    }
}
