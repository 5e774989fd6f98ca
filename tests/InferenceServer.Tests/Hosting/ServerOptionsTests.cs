using InferenceServer.Hosting;
using Microsoft.Extensions.Configuration;

namespace InferenceServer.Tests.Hosting;

public sealed class ServerOptionsTests
{
    private static ServerOptions Read(params (string Key, string Value)[] values)
        => ServerOptions.FromConfiguration(new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build());

    [Theory]
    [InlineData("1048576", 1048576d)]
    [InlineData("512m", 512d * 1024 * 1024)]
    [InlineData("2G", 2d * 1024 * 1024 * 1024)]
    [InlineData("64k", 65536d)]
    [InlineData("0.25", 0.25)]
    public void KvCacheMemory_AcceptsBytesSuffixesAndFractions(string text, double expected)
        => Assert.Equal(expected, Read(("kv-cache-memory", text)).Scheduler.KvCacheMemory);

    [Theory]
    [InlineData("kv-cache-memory", "-1")]
    [InlineData("kv-cache-memory", "lots")]
    [InlineData("max-num-seqs", "0")]
    [InlineData("block-size", "x")]
    [InlineData("threads", "-1")]
    public void BadValues_NameTheOption(string key, string value)
    {
        var ex = Assert.Throws<FormatException>(() => Read((key, value)));
        Assert.Contains("--" + key, ex.Message);
    }

    [Fact]
    public void ModelAndName_AreRead()
    {
        var options = Read(("model", "/m"), ("served-model-name", "coder"));
        Assert.Equal("/m", options.Model);
        Assert.Equal("coder", options.ServedModelName);
    }

    [Fact]
    public void SessionOptions_DefaultToAllCoresWithoutSpinning_AndAreRead()
    {
        var defaults = Read();
        Assert.Equal(0, defaults.Session.IntraOpThreads);
        Assert.False(defaults.Session.AllowSpinning);
        var set = Read(("threads", "1"), ("onnx-spinning", "true"));
        Assert.Equal(1, set.Session.IntraOpThreads);
        Assert.True(set.Session.AllowSpinning);
    }

    [Fact]
    public void DefaultModel_IsFoundFromTheTestBinary()
        => Assert.True(File.Exists(Path.Combine(ServerProgram.FindDefaultModel(), "model.onnx")));
}
