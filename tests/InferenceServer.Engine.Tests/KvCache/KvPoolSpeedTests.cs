// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using InferenceServer.Engine.KvCache;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Engine.Tests.KvCache;

/// <summary>
/// Placement by measured speed (issue 17 item 1): the sequential placement model (the split runners attend their pools
/// one after another) and the per-pool measurement that feeds it.
/// </summary>
public sealed class KvPoolSpeedTests
{
    [Fact]
    public void Sequential_Unmeasured_FillsInOrder()
    {
        var policy = KvPlacementPolicy.FromPools([new KvPoolRange("cuda:0", 0, 2), new KvPoolRange("cpu:0", 2, 2)], parallel: false);
        Assert.False(policy.Parallel);
        Assert.Equal(0, policy.Choose([1, 0]));
        Assert.Equal(1, policy.Choose([2, 0]));
        Assert.Equal(-1, policy.Choose([2, 2]));
    }

    [Fact]
    public void Sequential_Measured_PutsEachBlockWhereItCostsLeast_AndPassesOverUnmeasuredPools()
    {
        // Attention runs pool after pool: one more block costs its pool's seconds per block, whatever the others hold.
        var gpuFaster = new KvPlacementPolicy([new KvPoolInput("cuda:0", 10, 1e-6), new KvPoolInput("cpu", 100, 4e-6)], parallel: false);
        Assert.Equal(0, gpuFaster.Choose([9, 0]));
        Assert.Equal(1, gpuFaster.Choose([10, 5]));

        // A host pool measured faster than the GPU's (the log-sum-exp graph's fp32 gather) takes the blocks while it has room.
        var hostFaster = new KvPlacementPolicy([new KvPoolInput("cuda:0", 10, 5e-6), new KvPoolInput("cpu", 3, 2e-6)], parallel: false);
        Assert.Equal(1, hostFaster.Choose([0, 0]));
        Assert.Equal(0, hostFaster.Choose([0, 3]));

        // Not measured yet: passed over while a measured pool has room, used once none has.
        var third = new KvPlacementPolicy([new KvPoolInput("cuda:0", 2, 1e-6), new KvPoolInput("cpu:0", 2, 3e-6), new KvPoolInput("cpu:1", 2, 0)], parallel: false);
        Assert.Equal(1, third.Choose([2, 0, 0]));
        Assert.Equal(2, third.Choose([2, 2, 0]));

        // The parallel model (the default) still balances the slowest pool's time.
        var parallel = new KvPlacementPolicy([new KvPoolInput("cuda:0", 100, 1e-6), new KvPoolInput("cpu", 100, 4e-6)]);
        Assert.Equal(1, parallel.Choose([4, 0]));
        Assert.Equal(0, new KvPlacementPolicy([new KvPoolInput("cuda:0", 100, 1e-6), new KvPoolInput("cpu", 100, 4e-6)], parallel: false).Choose([4, 0]));
    }

    [Fact]
    public void Speed_MeasuresSecondsPerBlockOverAWindow_AndReportsOnlyChanges()
    {
        var speed = new KvPoolSpeed(["cuda:0", "cpu"], [10, 20]);
        var second = Stopwatch.Frequency;
        KvPoolInput[]? inputs = null;
        for (var step = 0; step < KvPoolSpeed.Window; step++)
        {
            // Pool 0: 4 blocks, 4 ms a step (1 ms a block); pool 1: no blocks (its ticks are ignored).
            speed.Record([second * 4 / 1000, second / 1000], [4, 0]);
            inputs = speed.EndStep();
            if (step < KvPoolSpeed.Window - 1)
            {
                Assert.Null(inputs);
            }
        }

        Assert.NotNull(inputs);
        Assert.Equal(1e-3, inputs[0].SecondsPerBlock, 6);
        Assert.Equal(0, inputs[1].SecondsPerBlock);
        Assert.Equal(("cuda:0", 10), (inputs[0].Name, inputs[0].Capacity));
        Assert.Equal(20, inputs[1].Capacity);

        // The same speed again: nothing to apply. The host pool's first measurement: applied.
        for (var step = 0; step < KvPoolSpeed.Window; step++)
        {
            speed.Record([second * 4 / 1000, 0], [4, 0]);
            Assert.Null(speed.EndStep());
        }

        for (var step = 0; step < KvPoolSpeed.Window - 1; step++)
        {
            speed.Record([second * 4 / 1000, second * 6 / 1000], [4, 2]);
            Assert.Null(speed.EndStep());
        }

        speed.Record([second * 4 / 1000, second * 6 / 1000], [4, 2]);
        inputs = speed.EndStep();
        Assert.NotNull(inputs);
        Assert.Equal(3e-3, inputs[1].SecondsPerBlock, 6);
        Assert.Equal(3e-3, speed.SecondsPerBlock(1), 6);

        // Mismatched lengths are ignored.
        speed.Record([1], [1, 2]);
    }
}
