using InferenceServer.Grpc;
using InferenceServer.Hosting;
using Microsoft.Extensions.Configuration;

namespace InferenceServer.Tests.Grpc;

public sealed class GrpcServerOptionsTests
{
    private static ServerOptions Read(params (string Key, string Value)[] values)
        => ServerOptions.FromConfiguration(new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build());

    [Fact]
    public void Defaults_NoGrpcListener()
    {
        var options = Read().Grpc;
        Assert.Null(options.Port);
        Assert.Null(options.TlsCertificate);
        Assert.Equal(GrpcServerOptions.DefaultMaxBufferedChunks, options.MaxBufferedChunks);
        Assert.Equal(4 * 1024 * 1024, options.MaxMessageSize);
    }

    [Fact]
    public void PortHostTlsAndBuffer_AreRead()
    {
        var options = Read(("grpc-port", "50051"), ("grpc-host", "0.0.0.0"), ("grpc-tls-certificate", "/c.pem"), ("grpc-tls-key", "/k.pem"), ("grpc-max-buffered-chunks", "64"), ("grpc-max-message-size", "65536")).Grpc;
        Assert.Equal(50051, options.Port);
        Assert.Equal("0.0.0.0", options.Host);
        Assert.Equal("/c.pem", options.TlsCertificate);
        Assert.Equal("/k.pem", options.TlsKey);
        Assert.Equal(64, options.MaxBufferedChunks);
        Assert.Equal(65536, options.MaxMessageSize);
    }

    [Theory]
    [InlineData("--grpc-port", "grpc-port", "-1")]
    [InlineData("--grpc-port", "grpc-port", "70000")]
    [InlineData("--grpc-port", "grpc-port", "h2c")]
    [InlineData("--grpc-max-buffered-chunks", "grpc-max-buffered-chunks", "0")]
    [InlineData("--grpc-max-message-size", "grpc-max-message-size", "0")]
    [InlineData("--grpc-max-message-size", "grpc-max-message-size", "4294967296")]
    [InlineData("--grpc-tls-key", "grpc-tls-key", "/k.pem")]
    [InlineData("--grpc-port", "grpc-tls-certificate", "/c.pem")]
    public void BadValues_NameTheOption(string named, string key, string value)
    {
        var ex = Assert.Throws<FormatException>(() => Read((key, value)));
        Assert.Contains(named, ex.Message);
    }
}
