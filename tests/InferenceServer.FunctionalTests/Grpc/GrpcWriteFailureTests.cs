using Grpc.Core;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Grpc;
using InferenceServer.Grpc.V1;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace InferenceServer.FunctionalTests.Grpc;

/// <summary>
/// <c>Generate</c> on the real engine when a response write fails, in the orders Kestrel and gRPC really produce: a client
/// reset fails the write before the call's token is cancelled (Kestrel cancels it from the thread pool), which is the
/// client going away (logged 499, nothing thrown); a write failing with no cancellation at all is a fault (thrown, UNKNOWN).
/// </summary>
public sealed class GrpcWriteFailureTests : IAsyncLifetime
{
    private TestServer _server = null!;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(RepositoryPaths.DefaultModel);

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task WriteFailsBeforeTheTokenIsCancelled_LogsTheClientLeaving_AndThrowsNothing()
    {
        using var client = new CancellationTokenSource();
        var logger = new StatusLogger();
        var service = ActivatorUtilities.CreateInstance<InferenceService>(_server.Services, logger);
        var writer = new FailingWriter(failAt: 3, onFailure: () => _ = Task.Run(async () =>
        {
            await Task.Delay(100);
            await client.CancelAsync();
        }));

        await service.Generate(Long("write-then-cancel"), writer, new CallContext(client.Token)).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(3, writer.Written);
        Assert.Equal(InferenceService.ClientClosedRequest, logger.StatusCode);
        Assert.True(logger.CompletionTokens > 0);
    }

    [Fact]
    public async Task WriteFailsWithNoCancellation_IsAFault_LoggedUnknown()
    {
        using var client = new CancellationTokenSource();
        var logger = new StatusLogger();
        var service = ActivatorUtilities.CreateInstance<InferenceService>(_server.Services, logger);
        var writer = new FailingWriter(failAt: 2, onFailure: () => { });

        await Assert.ThrowsAsync<IOException>(() => service.Generate(Long("write-fails"), writer, new CallContext(client.Token)).WaitAsync(TimeSpan.FromSeconds(60)));

        Assert.Equal((int)StatusCode.Unknown, logger.StatusCode);
        Assert.False(client.IsCancellationRequested);
    }

    private static GenerateRequest Long(string id) => new()
    {
        RequestId = id,
        Text = "def main():\n",
        Sampling = new SamplingParameters { Temperature = 0 },
        Stop = new StopConditions { MaxTokens = 2000, IgnoreEos = true },
    };

    /// <summary>Accepts <c>failAt</c> messages, then fails the next write as a reset stream's pipe does.</summary>
    private sealed class FailingWriter(int failAt, Action onFailure) : IServerStreamWriter<GenerateResponse>
    {
        public int Written { get; private set; }

        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(GenerateResponse message)
        {
            if (Written == failAt)
            {
                onFailure();
                throw new IOException("The client reset the request stream.");
            }

            Written++;
            return Task.CompletedTask;
        }
    }

    /// <summary>A call with no deadline whose token is the client's; its HttpContext is where gRPC lets a test put one.</summary>
    private sealed class CallContext : ServerCallContext
    {
        private readonly CancellationToken _token;

        public CallContext(CancellationToken token)
        {
            _token = token;
            UserState["__HttpContext"] = new DefaultHttpContext();
        }

        protected override string MethodCore => "/inference.v1.Inference/Generate";

        protected override string HostCore => "127.0.0.1";

        protected override string PeerCore => "ipv4:127.0.0.1:1";

        protected override DateTime DeadlineCore => DateTime.MaxValue;

        protected override Metadata RequestHeadersCore { get; } = [];

        protected override CancellationToken CancellationTokenCore => _token;

        protected override Metadata ResponseTrailersCore { get; } = [];

        protected override Status StatusCore { get; set; }

        protected override WriteOptions? WriteOptionsCore { get; set; }

        protected override AuthContext AuthContextCore { get; } = new(null, []);

        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();

        protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
    }

    /// <summary>Keeps the status and completion tokens of the request's <c>CompletionFinished</c> line.</summary>
    private sealed class StatusLogger : ILogger<InferenceService>
    {
        public int? StatusCode { get; private set; }

        public int CompletionTokens { get; private set; }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Name == "CompletionFinished" && state is IReadOnlyList<KeyValuePair<string, object?>> values)
            {
                StatusCode = values.Where(v => v.Key == "StatusCode").Select(v => (int?)v.Value).First();
                CompletionTokens = values.Where(v => v.Key == "CompletionTokens").Select(v => (int)v.Value!).First();
            }
        }
    }
}
