using InferenceServer.Hosting;
using InferenceServer.Hosting.CommandLine;
using Microsoft.Extensions.Configuration;

namespace InferenceServer.Tests.Hosting;

/// <summary><c>--max-connections</c>, <c>--keep-alive-timeout</c> and <c>--metrics-require-key</c>.</summary>
public sealed class ServerOptionsConnectionTests
{
    private static ServerOptions Read(params (string Key, string Value)[] values)
        => ServerOptions.FromConfiguration(new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build());

    [Fact]
    public void Defaults_DeriveTheLimit_75SecondKeepAlive_OpenMetrics()
    {
        var options = Read();
        Assert.Null(options.MaxConnections);
        Assert.Equal(TimeSpan.FromSeconds(75), options.KeepAliveTimeout);
        Assert.False(options.MetricsRequireKey);
    }

    [Fact]
    public void Values_AreRead()
    {
        var options = Read(("max-connections", "200"), ("keep-alive-timeout", "2.5"), ("metrics-require-key", "true"));
        Assert.Equal(200, options.MaxConnections);
        Assert.Equal(TimeSpan.FromSeconds(2.5), options.KeepAliveTimeout);
        Assert.True(options.MetricsRequireKey);
    }

    [Theory]
    [InlineData("max-connections", "0")]
    [InlineData("max-connections", "-5")]
    [InlineData("max-connections", "many")]
    [InlineData("keep-alive-timeout", "0")]
    [InlineData("keep-alive-timeout", "NaN")]
    [InlineData("metrics-require-key", "yes")]
    public void BadValue_NamesTheOption(string key, string value)
        => Assert.Contains("--" + key, Assert.Throws<FormatException>(() => Read((key, value))).Message, StringComparison.Ordinal);

    [Fact]
    public void MetricsRequireKey_WithoutAValue_IsAFlag()
        => Assert.Equal("true", ServerCommandLine.Parse(["--metrics-require-key", "--port", "1"]).Values["metrics-require-key"]);
}
