using InferenceServer.Http;

namespace InferenceServer.Tests.Http;

public sealed class ConnectionLimitsTests
{
    [Theory]
    [InlineData(1_048_576L, 4096)]
    [InlineData(20_000L, 4096)]
    [InlineData(4096L, 3148)]
    [InlineData(1024L, 691)]
    [InlineData(100L, ConnectionLimits.SmallestDerivedLimit)]
    public void Default_StaysWellBelowTheDescriptorLimit(long descriptors, int expected)
    {
        var limits = ConnectionLimits.Create(null, ConnectionLimits.DefaultKeepAliveTimeout, descriptors);
        Assert.Equal(expected, limits.MaxConnections);
        Assert.Null(limits.Warning);
    }

    [Fact]
    public void Default_WithoutADescriptorLimit_Is4096()
        => Assert.Equal(ConnectionLimits.DefaultMaxConnections, ConnectionLimits.Create(null, TimeSpan.FromSeconds(5), null).MaxConnections);

    [Fact]
    public void Configured_CloseToTheDescriptorLimit_IsKeptButWarned()
    {
        var limits = ConnectionLimits.Create(1000, ConnectionLimits.DefaultKeepAliveTimeout, 1024);
        Assert.Equal(1000, limits.MaxConnections);
        Assert.Contains("--max-connections 1000", limits.Warning, StringComparison.Ordinal);
        Assert.Contains("1024", limits.Warning, StringComparison.Ordinal);
        Assert.Null(ConnectionLimits.Create(500, ConnectionLimits.DefaultKeepAliveTimeout, 1024).Warning);
    }

    [Theory]
    [InlineData(75, 30)]
    [InlineData(10, 10)]
    public void RequestHeadersTimeout_IsTheKeepAliveTimeoutAtMost30Seconds(int keepAlive, int expected)
        => Assert.Equal(TimeSpan.FromSeconds(expected), ConnectionLimits.Create(null, TimeSpan.FromSeconds(keepAlive), null).RequestHeadersTimeout);

    [Fact]
    public void ReadDescriptorLimit_ReadsTheSoftLimit()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "Limit                     Soft Limit           Hard Limit           Units     \nMax processes             unlimited            unlimited            processes \nMax open files            1024                 524288               files     \n");
            Assert.Equal(1024, ConnectionLimits.ReadDescriptorLimit(path));
            File.WriteAllText(path, "Max open files            unlimited            unlimited            files     \n");
            Assert.Null(ConnectionLimits.ReadDescriptorLimit(path));
        }
        finally
        {
            File.Delete(path);
        }

        Assert.Null(ConnectionLimits.ReadDescriptorLimit(path));
    }

    [Fact]
    public void ReadDescriptorLimit_OnThisMachine_IsPositiveWhereProcExists()
    {
        if (File.Exists("/proc/self/limits"))
        {
            Assert.True(ConnectionLimits.ReadDescriptorLimit() > 0);
        }
    }
}
