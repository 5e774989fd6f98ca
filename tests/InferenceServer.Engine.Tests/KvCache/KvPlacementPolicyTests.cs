using InferenceServer.Engine.KvCache;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Engine.Tests.KvCache;

public sealed class KvPlacementPolicyTests
{
    [Fact]
    public void OnePool_IsAlwaysChosen_UntilFull()
    {
        var policy = KvPlacementPolicy.FromPools([new KvPoolRange("cuda:0", 0, 4)]);
        Assert.Equal(0, policy.Choose([0]));
        Assert.Equal(0, policy.Choose([3]));
        Assert.Equal(-1, policy.Choose([4]));
    }

    [Fact]
    public void Unmeasured_FillsComputeLocalFirst_ThenInOrder()
    {
        var policy = KvPlacementPolicy.FromPools([new KvPoolRange("cuda:0", 0, 2), new KvPoolRange("cpu:0", 2, 2), new KvPoolRange("cpu:1", 4, 2)]);
        Assert.Equal(0, policy.Choose([1, 0, 0]));
        Assert.Equal(1, policy.Choose([2, 0, 0]));
        Assert.Equal(2, policy.Choose([2, 2, 1]));
        Assert.Equal(-1, policy.Choose([2, 2, 2]));
    }

    [Fact]
    public void Measured_KeepsComputeLocalWhileItIsFastest_ThenBalancesStepTime()
    {
        // The GPU attends a block in 1 us, the CPU in 4 us: the GPU takes blocks until its step would be slower than the
        // CPU's with one more block.
        var policy = new KvPlacementPolicy([new KvPoolInput("cuda:0", 100, 1e-6), new KvPoolInput("cpu", 100, 4e-6)]);
        Assert.Equal(0, policy.Choose([0, 0]));
        Assert.Equal(0, policy.Choose([3, 0]));
        Assert.Equal(1, policy.Choose([4, 0]));
        Assert.Equal(0, policy.Choose([4, 1]));
        Assert.Equal(1, policy.Choose([8, 1]));

        // A full compute-local pool sends everything to the other.
        Assert.Equal(1, new KvPlacementPolicy([new KvPoolInput("cuda:0", 4, 1e-6), new KvPoolInput("cpu", 100, 4e-6)]).Choose([4, 50]));
        Assert.Contains("cuda:0: 100 blocks", policy.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void BadInputs_AreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvPlacementPolicy([]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvPlacementPolicy([new KvPoolInput("cpu", -1, 0)]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvPlacementPolicy([new KvPoolInput("cpu", 1, double.NaN)]));
        Assert.Throws<ArgumentException>(() => KvPlacementPolicy.FromPools([new KvPoolRange("cpu", 0, 1)]).Choose([0, 0]));
    }
}
