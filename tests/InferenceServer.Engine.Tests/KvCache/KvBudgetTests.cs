// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.KvCache;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Engine.Tests.KvCache;

/// <summary>
/// <see cref="KvBudget"/>'s per-pool sizes (<c>--kv-cache-memory 20g,64g</c>, one per <c>--attention-device</c>): each
/// size buys its own pool's blocks, bytes as given or a fraction of that pool's free memory, and together they must hold
/// one full-context sequence.
/// </summary>
public sealed class KvBudgetTests
{
    // 2 layers of 1 KV head x 8 wide, fp32: 128 bytes a token, 2 KiB a block of 16; a 256-token context needs 16 blocks.
    private static readonly ModelSpec Spec = new()
    {
        VocabularySize = 100,
        ContextLength = 256,
        KvLayers = [new LayerKvSpec(0, 1, 8, 1, 8), new LayerKvSpec(1, 1, 8, 1, 8)],
        ElementType = KvElementType.Float32,
    };

    [Fact]
    public void EachSize_BuysItsOwnPoolsBlocks()
    {
        var budget = new KvBudget(256 * 1024, 16) { PoolMemory = [8 * 2048, 40 * 2048 + 100] };
        Assert.Equal([8, 40], budget.PlanPoolBlocks(Spec, 16, [null, null]));
    }

    [Fact]
    public void AFraction_IsOfThatPoolsFreeMemory()
    {
        // Half of a device with 64 blocks' bytes free, then a quarter of one with 400: 32 and 100.
        var budget = new KvBudget(256 * 1024, 16) { PoolMemory = [0.5, 0.25] };
        Assert.Equal([32, 100], budget.PlanPoolBlocks(Spec, 16, [64 * 2048, 400 * 2048]));
    }

    [Fact]
    public void SizesThatDoNotMatchThePools_OrHoldLessThanOneSequence_AreRefused()
    {
        var budget = new KvBudget(256 * 1024, 16) { PoolMemory = [8 * 2048, 8 * 2048] };
        var error = Assert.Throws<InvalidOperationException>(() => budget.PlanPoolBlocks(Spec, 16, [null, null, null]));
        Assert.Contains("2 sizes for 3 attention devices", error.Message, StringComparison.Ordinal);

        // 8 + 7 blocks together: one short of a 256-token sequence.
        error = Assert.Throws<InvalidOperationException>(() => (budget with { PoolMemory = [8 * 2048, 7 * 2048] }).PlanPoolBlocks(Spec, 16, [null, null]));
        Assert.Contains("hold 15 blocks of 16 tokens together, fewer than one full-context sequence needs (16 blocks", error.Message, StringComparison.Ordinal);
        Assert.Equal([8, 8], budget.PlanPoolBlocks(Spec, 16, [null, null]));

        Assert.Throws<ArgumentOutOfRangeException>(() => new KvBudget(1024, 16) { PoolMemory = [] });
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvBudget(1024, 16) { PoolMemory = [1024, -1] });
    }
}
