using System.Net.Sockets;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Http;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace InferenceServer.FunctionalTests;

/// <summary>The default model with <c>--max-connections 200</c>, shared by its HTTP and gRPC listeners.</summary>
public sealed class ConnectionLimitServer() : ModelServerFixture(RepositoryPaths.DefaultModel, "--max-connections", "200");

/// <summary>
/// A bounded connection flood: thousands of idle sockets on loopback, to the HTTP and the gRPC port, against
/// <c>--max-connections 200</c> (one limit for both). The server
/// closes what is past the limit on arrival (so its descriptors are not exhausted), stays alive, and once the flood is
/// released serves a completion and its gRPC port again.
/// </summary>
public sealed class ConnectionFloodTests(ConnectionLimitServer fixture, ITestOutputHelper output) : IClassFixture<ConnectionLimitServer>
{
    private const int Limit = 200;

    [Fact]
    public async Task IdleSocketFlood_IsCutAtTheLimit_AndTheServerServesAfterwards()
    {
        var server = fixture.Server;
        var limiter = server.Services.GetRequiredService<ConnectionLimiter>();
        var flood = int.TryParse(Environment.GetEnvironmentVariable("FLOOD_SOCKETS"), out var n) ? n : 3000;
        var sockets = new List<Socket>(flood);
        var closedByServer = new Task<bool>[flood];
        try
        {
            // In waves of 100, so that the listen backlog drains between them on a loaded machine; every other socket
            // goes to the gRPC port, which shares the limit.
            var grpc = server.GrpcAddress!;
            for (var i = 0; i < flood; i += 100)
            {
                var wave = Enumerable.Range(i, Math.Min(100, flood - i)).Select(async k =>
                {
                    var target = k % 2 == 0 ? server.BaseAddress : grpc;
                    var socket = new Socket(System.Net.Sockets.AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                    await socket.ConnectAsync(target.Host, target.Port, timeout.Token);
                    return socket;
                });
                foreach (var socket in await Task.WhenAll(wave))
                {
                    closedByServer[sockets.Count] = ClosedByPeerAsync(socket);
                    sockets.Add(socket);
                }
            }

            // Everything past the limit is closed by the server on arrival; the limit's worth stays open (idle).
            await Eventually.TrueAsync(() => closedByServer.Count(t => t.IsCompleted) >= flood - Limit, $"{flood - Limit} sockets closed by the server", seconds: 120);
            output.WriteLine($"{flood} sockets: {closedByServer.Count(t => t.IsCompleted)} closed by the server, {limiter.Open} open, {limiter.Refused} refused in all");
            Assert.True(limiter.Open <= Limit, $"{limiter.Open} connections open past the limit of {Limit}");
            Assert.True(limiter.Refused >= flood - Limit);
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }

        // Released: the server notices the closes, then serves HTTP and gRPC as before.
        await Eventually.TrueAsync(() => limiter.Open == 0, "the flood's connections closed", seconds: 120);
        var completion = await server.CompleteAsync("""{"prompt":"def f():","max_tokens":4,"temperature":0}""");
        Assert.Equal(4, completion.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var tokens = await server.Grpc!.TokenizeAsync(new InferenceServer.Grpc.V1.TokenizeRequest { Text = "def f():" }, deadline: DateTime.UtcNow.AddSeconds(60));
        Assert.NotEmpty(tokens.TokenIds);
    }

    private static async Task<bool> ClosedByPeerAsync(Socket socket)
    {
        var buffer = new byte[16];
        try
        {
            // 0 bytes: the server closed it. An idle kept connection never completes until the test disposes it.
            return await socket.ReceiveAsync(buffer, SocketFlags.None) == 0;
        }
        catch (SocketException)
        {
            return true;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }
}

/// <summary>The default model with <c>--keep-alive-timeout 1</c>: idle connections and slow headers are cut after a second.</summary>
public sealed class ShortKeepAliveServer() : ModelServerFixture(RepositoryPaths.DefaultModel, "--keep-alive-timeout", "1");

/// <summary><c>--keep-alive-timeout</c> closes idle connections (silent ones, kept-alive ones, half-sent headers) on both ports.</summary>
public sealed class KeepAliveTimeoutTests(ShortKeepAliveServer fixture) : IClassFixture<ShortKeepAliveServer>
{
    [Theory]
    [InlineData(false, "")]
    [InlineData(false, "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData(false, "GET /health/live HTTP/1.1\r\nHost: x\r\n")]
    [InlineData(true, "")]
    public async Task IdleConnection_IsClosedByTheServer(bool grpcPort, string send)
    {
        var target = grpcPort ? fixture.Server.GrpcAddress! : fixture.Server.BaseAddress;
        using var socket = new Socket(System.Net.Sockets.AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await socket.ConnectAsync(target.Host, target.Port, timeout.Token);
        if (send.Length > 0)
        {
            await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes(send), SocketFlags.None, timeout.Token);
        }

        // Whatever the server answers first (a response, a 408, an HTTP/2 GOAWAY), it then closes: read to the end.
        var buffer = new byte[4096];
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token) > 0)
            {
            }
        }
        catch (SocketException)
        {
            // Reset by the server: closed too.
        }

        Assert.False(timeout.IsCancellationRequested, "the server kept an idle connection open for 60 s with --keep-alive-timeout 1");
    }
}

/// <summary>The real executable warns at start when <c>--max-connections</c> leaves too few descriptors.</summary>
public sealed class ConnectionLimitStartupTests
{
    [Fact]
    public async Task MaxConnectionsAboveTheDescriptorLimit_IsWarnedOnStderr()
    {
        // The warning comes before the model loads, so a folder that is no model ends the run quickly after it.
        var folder = Directory.CreateTempSubdirectory("not-a-model-").FullName;
        try
        {
            var (code, stderr) = await StartupTests.RunServerAsync("--model", folder, "--max-connections", "100000000");
            Assert.Equal(2, code);
            const string Warning = "warning: --max-connections 100000000 is close to or above the open-file limit";
            if (ConnectionLimits.ReadDescriptorLimit() is null)
            {
                // No limit to read (not Linux, or unlimited): nothing to warn about.
                Assert.DoesNotContain(Warning, stderr, StringComparison.Ordinal);
            }
            else
            {
                Assert.Contains(Warning, stderr, StringComparison.Ordinal);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
