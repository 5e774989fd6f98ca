using InferenceServer.Engine.Text;

namespace InferenceServer.Engine.Tests.Text;

public sealed class StopStringMatcherTests
{
    [Fact]
    public void NoStops_PassesThrough()
    {
        var matcher = new StopStringMatcher([]);
        Assert.Equal("abc", matcher.Push("abc"));
        Assert.Equal("", matcher.Flush());
    }

    [Fact]
    public void StopSplitAcrossPushes_IsHeldThenDropped()
    {
        var matcher = new StopStringMatcher(["END"]);
        Assert.Equal("hello ", matcher.Push("hello E"));
        Assert.Equal("", matcher.Push("N"));
        Assert.Equal("", matcher.Push("D and more"));
        Assert.True(matcher.Stopped);
        Assert.Equal("", matcher.Flush());
    }

    [Fact]
    public void FalseStart_IsReleased()
    {
        var matcher = new StopStringMatcher(["END"]);
        Assert.Equal("x", matcher.Push("xE"));
        Assert.Equal("Ex", matcher.Push("x"));
        Assert.False(matcher.Stopped);
    }

    [Fact]
    public void EarliestOfSeveralStops_Wins()
    {
        var matcher = new StopStringMatcher(["world", "lo"]);
        Assert.Equal("hel", matcher.Push("hello world"));
    }

    [Fact]
    public void Flush_ReleasesHeldPrefix()
    {
        var matcher = new StopStringMatcher(["\n\n"]);
        Assert.Equal("line", matcher.Push("line\n"));
        Assert.Equal("\n", matcher.Flush());
    }
}
