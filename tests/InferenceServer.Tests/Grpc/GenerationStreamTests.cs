using System.Threading.Channels;
using Grpc.Core;
using InferenceServer.Engine.Requests;
using InferenceServer.Grpc;
using InferenceServer.Grpc.V1;
using FinishReason = InferenceServer.Engine.Requests.FinishReason;

namespace InferenceServer.Tests.Grpc;

/// <summary>The per-call buffer between the engine and a gRPC stream: ordering, completion, and the slow-client bound.</summary>
public sealed class GenerationStreamTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Updates_BecomeChunksThenComplete_InOrder()
    {
        var engine = Channel.CreateUnbounded<GenerationUpdate>();
        engine.Writer.TryWrite(new GenerationUpdate(5, "a"));
        engine.Writer.TryWrite(new GenerationUpdate(6, ""));
        engine.Writer.TryWrite(new GenerationUpdate(-1, "bc", FinishReason.Length, PromptTokens: 3, CompletionTokens: 2, CachedPromptTokens: 1));
        engine.Writer.TryComplete();
        using var lifetime = new CancellationTokenSource();
        var stream = new GenerationStream([engine.Reader], 8, TimeProvider.System, TimeProvider.System.GetTimestamp(), lifetime);
        var writer = new RecordingWriter();

        await stream.WriteToAsync(writer, "req-1", NewEntry(lifetime), CancellationToken.None).WaitAsync(Timeout);

        Assert.Equal(4, writer.Messages.Count);
        Assert.Equal("req-1", writer.Messages[0].RequestId);
        Assert.All(writer.Messages.Skip(1), m => Assert.Equal("", m.RequestId));
        Assert.Equal([5u], writer.Messages[0].Chunk.TokenIds);
        Assert.Equal("a", writer.Messages[0].Chunk.Text);
        Assert.Equal([6u], writer.Messages[1].Chunk.TokenIds);
        Assert.Empty(writer.Messages[2].Chunk.TokenIds);
        Assert.Equal("bc", writer.Messages[2].Chunk.Text);
        var complete = writer.Messages[3].Complete;
        Assert.Equal(InferenceServer.Grpc.V1.FinishReason.Length, complete.FinishReason);
        Assert.Equal(new Usage { PromptTokens = 3, CompletionTokens = 2, CachedPromptTokens = 1 }, complete.Usage);
        Assert.Equal(writer.Messages[0].Chunk.Timing.SinceArrivalUs, complete.TimeToFirstTokenUs);
        Assert.False(lifetime.IsCancellationRequested);
    }

    [Fact]
    public async Task SlowClient_OverflowAbortsTheRequest_AndEndsWithResourceExhausted()
    {
        var engine = Channel.CreateUnbounded<GenerationUpdate>();
        using var lifetime = new CancellationTokenSource();
        var stream = new GenerationStream([engine.Reader], 4, TimeProvider.System, TimeProvider.System.GetTimestamp(), lifetime);
        var writer = new RecordingWriter { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        var writing = stream.WriteToAsync(writer, "req-2", NewEntry(lifetime), CancellationToken.None);

        // The client reads nothing: the first write hangs while the engine produces more than the buffer holds.
        for (var i = 0; i < 20; i++)
        {
            engine.Writer.TryWrite(new GenerationUpdate(i, "x"));
        }

        var aborted = new TaskCompletionSource();
        using (lifetime.Token.Register(() => aborted.TrySetResult()))
        {
            await aborted.Task.WaitAsync(Timeout);
        }

        Assert.True(stream.Overflowed);
        writer.Gate.SetResult();
        var ex = await Assert.ThrowsAsync<RpcException>(() => writing.WaitAsync(Timeout));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
        Assert.Contains("too slowly", ex.Status.Detail);
        Assert.Contains("4 chunks", ex.Status.Detail);
        Assert.True(writer.Messages.Count <= 1);
    }

    [Fact]
    public async Task EngineError_IsInternal_AndAbort_IsCancelled()
    {
        var engine = Channel.CreateUnbounded<GenerationUpdate>();
        engine.Writer.TryWrite(new GenerationUpdate(-1, "", FinishReason.Error, Error: "step failed"));
        engine.Writer.TryComplete();
        using var lifetime = new CancellationTokenSource();
        var stream = new GenerationStream([engine.Reader], 8, TimeProvider.System, TimeProvider.System.GetTimestamp(), lifetime);
        var ex = await Assert.ThrowsAsync<RpcException>(() => stream.WriteToAsync(new RecordingWriter(), "r", NewEntry(lifetime), CancellationToken.None));
        Assert.Equal(StatusCode.Internal, ex.StatusCode);
        Assert.Contains("step failed", ex.Status.Detail);

        var cancelled = Channel.CreateUnbounded<GenerationUpdate>();
        cancelled.Writer.TryWrite(new GenerationUpdate(-1, "", FinishReason.Cancelled));
        cancelled.Writer.TryComplete();
        using var lifetime2 = new CancellationTokenSource();
        var entry = NewEntry(lifetime2);
        entry.Abort();
        stream = new GenerationStream([cancelled.Reader], 8, TimeProvider.System, TimeProvider.System.GetTimestamp(), lifetime2);
        ex = await Assert.ThrowsAsync<RpcException>(() => stream.WriteToAsync(new RecordingWriter(), "r2", entry, CancellationToken.None));
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
        Assert.Contains("r2", ex.Status.Detail);
    }

    private static ActiveGenerations.Entry NewEntry(CancellationTokenSource lifetime)
    {
        var active = new ActiveGenerations();
        Assert.True(active.TryAdd("scope", Guid.NewGuid().ToString(), lifetime, out var entry));
        return entry;
    }

    private sealed class RecordingWriter : IServerStreamWriter<GenerateResponse>
    {
        public List<GenerateResponse> Messages { get; } = [];

        public TaskCompletionSource? Gate { get; init; }

        public WriteOptions? WriteOptions { get; set; }

        public async Task WriteAsync(GenerateResponse message)
        {
            Messages.Add(message);
            if (Gate is not null)
            {
                await Gate.Task;
            }
        }
    }
}
