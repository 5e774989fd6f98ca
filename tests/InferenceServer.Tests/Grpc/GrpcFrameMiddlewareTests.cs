using InferenceServer.Grpc;

namespace InferenceServer.Tests.Grpc;

public sealed class GrpcFrameMiddlewareTests
{
    [Theory]
    [InlineData("300m", 3_000_000L)]
    [InlineData("2S", 20_000_000L)]
    [InlineData("1M", 600_000_000L)]
    [InlineData("1H", 36_000_000_000L)]
    [InlineData("1500u", 15_000L)]
    [InlineData("1000n", 10L)]
    [InlineData("99999999m", null)]
    [InlineData("99999999H", null)]
    [InlineData("123456789m", null)]
    [InlineData("m", null)]
    [InlineData("10x", null)]
    [InlineData("-5S", null)]
    [InlineData(" 5S", null)]
    [InlineData("", null)]
    [InlineData(null, null)]
    public void ParseTimeout_ReadsGrpcTimeout_OrNothing(string? header, long? ticks)
        => Assert.Equal(ticks is { } t ? TimeSpan.FromTicks(t) : null, GrpcFrameMiddleware.ParseTimeout(header));
}
