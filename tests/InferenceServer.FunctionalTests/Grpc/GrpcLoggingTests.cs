using System.Text.Json;
using Grpc.Core;
using Grpc.Net.Client;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Grpc.V1;

namespace InferenceServer.FunctionalTests.Grpc;

/// <summary>
/// The real executable's JSON log for gRPC calls that did not complete: a deadline, an Abort and a client cancel each
/// log one <c>CompletionFinished</c> line with the tokens really generated and the status (4, 1, 499), no exception
/// (stack trace) is logged, and start-up logs no Kestrel "Overriding address(es)" warning.
/// </summary>
public sealed class GrpcLoggingTests
{
    private static GenerateRequest Long(string id) => new()
    {
        RequestId = id,
        Text = "def main():\n",
        Sampling = new SamplingParameters { Temperature = 0 },
        Stop = new StopConditions { MaxTokens = 2000, IgnoreEos = true },
    };

    [Fact]
    public async Task UnfinishedCalls_LogRealCountsAndStatus_WithoutStackTraces()
    {
        await using var server = await ServerProcess.StartAsync("--grpc-port", "0", "--grpc-host", "127.0.0.1");
        await Eventually.TrueAsync(() => server.EventsNamed("GrpcListening").Count == 1, "the gRPC port's address in the log", 60);
        var address = server.EventsNamed("GrpcListening")[0].GetProperty("Address").GetString()!;
        using var channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions { MaxRetryAttempts = 0 });
        var client = new Inference.InferenceClient(channel);

        // The connection is up before the deadline call: its grpc-timeout is sent relative to when the call starts, so a
        // slow first connection would leave the server's copy of the deadline well after the client's.
        Assert.Single((await client.ListModelsAsync(new ListModelsRequest())).Models);

        // A deadline: the call has streamed tokens when it passes.
        using (var call = client.Generate(Long("log-deadline"), deadline: DateTime.UtcNow.AddSeconds(1)))
        {
            Assert.True(await call.ResponseStream.MoveNext());
            var deadline = await Assert.ThrowsAsync<RpcException>(async () =>
            {
                while (await call.ResponseStream.MoveNext())
                {
                }
            });
            // The client's own deadline usually ends the call first (DeadlineExceeded). The server's copy of it can pass
            // a moment earlier (grpc-timeout is sent as whole milliseconds left, rounded down); Grpc.AspNetCore then
            // sends the trailers and resets the stream, and the client may read the reset first (Unavailable; seen once
            // in CI on 2026-12-08). Either way the server ended it as a deadline: its log line below must say status 4.
            Assert.Contains(deadline.StatusCode, (StatusCode[])[StatusCode.DeadlineExceeded, StatusCode.Unavailable]);
        }

        using (var call = client.Generate(Long("log-abort"), deadline: DateTime.UtcNow.AddSeconds(60)))
        {
            Assert.True(await call.ResponseStream.MoveNext());
            await client.AbortAsync(new AbortRequest { RequestId = "log-abort" });
            var aborted = await Assert.ThrowsAsync<RpcException>(async () =>
            {
                while (await call.ResponseStream.MoveNext())
                {
                }
            });
            Assert.Equal(StatusCode.Cancelled, aborted.StatusCode);
        }

        using (var cancel = new CancellationTokenSource())
        using (var call = client.Generate(Long("log-cancel"), deadline: DateTime.UtcNow.AddSeconds(60), cancellationToken: cancel.Token))
        {
            Assert.True(await call.ResponseStream.MoveNext());
            await cancel.CancelAsync();
        }

        await Eventually.TrueAsync(() => server.EventsNamed("CompletionFinished").Any(e => e.GetProperty("CompletionId").GetString() == "log-cancel"), "the cancelled call's log line", 60);
        await server.TerminateAsync();
        Assert.Equal(0, await server.WaitForExitAsync(TimeSpan.FromSeconds(60)));

        var finished = server.EventsNamed("CompletionFinished").ToDictionary(e => e.GetProperty("CompletionId").GetString()!);
        foreach (var (id, status) in (ValueTuple<string, int>[])[("log-deadline", 4), ("log-abort", 1), ("log-cancel", 499)])
        {
            var line = finished[id];
            Assert.True(status == line.GetProperty("StatusCode").GetInt32(), $"{id}: {line}");
            Assert.True(line.GetProperty("CompletionTokens").GetInt32() > 0, $"{id}: {line}");
            Assert.True(line.GetProperty("PromptTokens").GetInt32() > 0, $"{id}: {line}");
        }

        Assert.DoesNotContain(server.Lines, line => line.Contains("Overriding address", StringComparison.Ordinal));
        var withException = server.Events.Where(e => e.TryGetProperty("@x", out _)).Select(e => e.ToString()).ToList();
        Assert.True(withException.Count == 0, string.Join('\n', withException));
        Assert.DoesNotContain(server.Events, e => e.TryGetProperty("@l", out var level) && level.GetString() is "Error" or "Fatal");
    }
}
