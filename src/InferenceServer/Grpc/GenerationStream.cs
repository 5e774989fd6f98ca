// Licensed under the MIT License. See LICENSE in the repository root.
using System.Threading.Channels;
using Grpc.Core;
using InferenceServer.Engine.Requests;
using InferenceServer.Grpc.V1;
using InferenceServer.Serving;
using FinishReason = InferenceServer.Engine.Requests.FinishReason;

namespace InferenceServer.Grpc;

/// <summary>
/// The server side of one Generate stream. A pump per choice moves the engine's updates, with the time they left the
/// scheduler, into one bounded buffer that the call's writer drains into gRPC messages. The engine never waits
/// on a client: when a slow client lets more than the buffer's capacity pile up, the request is cancelled at once
/// (the scheduler frees its KV blocks at its next iteration) and the call ends with RESOURCE_EXHAUSTED.
/// </summary>
internal sealed class GenerationStream
{
    private readonly Channel<BufferedUpdate> _buffer;
    private readonly TimeProvider _time;
    private readonly long _arrival;
    private readonly CancellationTokenSource _lifetime;
    private readonly int _choices;
    private readonly int _capacity;
    private readonly TaskCompletionSource _pumped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly UsageCounter _usage = new();
    private int _pumping;
    private int _overflowed;

    /// <summary>
    /// Starts pumping <paramref name="choices"/> into a buffer of <paramref name="maxBufferedChunks"/> chunks (plus one
    /// final message per choice). <paramref name="lifetime"/> is cancelled on overflow.
    /// </summary>
    public GenerationStream(IReadOnlyList<ChannelReader<GenerationUpdate>> choices, int maxBufferedChunks, TimeProvider time, long arrival, CancellationTokenSource lifetime)
    {
        _time = time;
        _arrival = arrival;
        _lifetime = lifetime;
        _choices = choices.Count;
        _capacity = maxBufferedChunks;
        _buffer = Channel.CreateBounded<BufferedUpdate>(new BoundedChannelOptions(maxBufferedChunks + choices.Count)
        {
            SingleReader = true,
            SingleWriter = choices.Count == 1,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _pumping = choices.Count;
        for (var i = 0; i < choices.Count; i++)
        {
            _ = PumpAsync(i, choices[i]);
        }
    }

    /// <summary>Completes once the engine has ended every choice (each with its final update), however the call ended.</summary>
    public Task Completion => _pumped.Task;

    /// <summary>True once the buffer overflowed and the request was aborted.</summary>
    public bool Overflowed => Volatile.Read(ref _overflowed) != 0;

    /// <summary>
    /// Writes the buffered updates to <paramref name="writer"/> until every choice has finished: chunks with timings,
    /// then one <see cref="GenerateComplete"/> per choice. Throws the <see cref="RpcException"/> the call should end
    /// with when a choice did not finish normally.
    /// </summary>
    public async Task WriteToAsync(IServerStreamWriter<GenerateResponse> writer, string requestId, ActiveGenerations.Entry entry, CancellationToken cancellationToken)
    {
        // Microseconds since arrival of each choice's previous chunk and first token (0: none yet).
        var previous = new ulong[_choices];
        var firstToken = new ulong[_choices];
        var first = true;
        var reader = _buffer.Reader;
        while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            while (reader.TryRead(out var item))
            {
                if (Overflowed)
                {
                    throw OverflowError();
                }

                var update = item.Update;
                var elapsed = Microseconds(_arrival, item.Timestamp);
                if (update.TokenId >= 0 || update.Text.Length > 0)
                {
                    var chunk = new GenerateChunk
                    {
                        Index = (uint)item.Index,
                        Text = update.Text,
                        Timing = new ChunkTiming
                        {
                            SinceArrivalUs = elapsed,
                            SincePreviousUs = elapsed - previous[item.Index],
                        },
                    };
                    if (update.Logprobs is { } logprobs)
                    {
                        var report = new V1.TokenLogprob { TokenId = (uint)logprobs.TokenId, Logprob = logprobs.Logprob };
                        foreach (var candidate in logprobs.Top)
                        {
                            report.TopLogprobs.Add(new TopLogprob { TokenId = (uint)candidate.TokenId, Logprob = candidate.Logprob });
                        }

                        chunk.Logprobs.Add(report);
                    }

                    if (update.TokenId >= 0)
                    {
                        chunk.TokenIds.Add((uint)update.TokenId);
                        if (firstToken[item.Index] == 0)
                        {
                            firstToken[item.Index] = elapsed;
                        }
                    }

                    previous[item.Index] = elapsed;
                    // The call's own cancellation already aborts the write; no per-write registration. Once the call is
                    // cancelled (deadline, client gone) gRPC may have ended the response: nothing more is written.
                    cancellationToken.ThrowIfCancellationRequested();
                    await writer.WriteAsync(Message(chunk, null, requestId, ref first), CancellationToken.None).ConfigureAwait(false);
                }

                if (update.IsFinal)
                {
                    var complete = Complete(item, firstToken[item.Index], elapsed, requestId, entry, cancellationToken);
                    cancellationToken.ThrowIfCancellationRequested();
                    await writer.WriteAsync(Message(null, complete, requestId, ref first), CancellationToken.None).ConfigureAwait(false);
                }
            }
        }

        if (Overflowed)
        {
            throw OverflowError();
        }
    }

    /// <summary>
    /// The call's counts and timings over the final updates of its choices that have ended (for the request's log line);
    /// after <see cref="Completion"/>, those of all of them, whether the call completed, was aborted, hit its deadline
    /// or lost its client.
    /// </summary>
    public UsageCounter Usage => _usage;

    private GenerateComplete Complete(in BufferedUpdate item, ulong firstToken, ulong elapsed, string requestId, ActiveGenerations.Entry entry, CancellationToken cancellationToken)
    {
        var update = item.Update;
        switch (update.Finish)
        {
            case FinishReason.Stop:
            case FinishReason.Length:
                return new GenerateComplete
                {
                    Index = (uint)item.Index,
                    FinishReason = update.Finish == FinishReason.Stop ? V1.FinishReason.Stop : V1.FinishReason.Length,
                    Usage = new Usage
                    {
                        PromptTokens = (uint)update.PromptTokens,
                        CompletionTokens = (uint)update.CompletionTokens,
                        CachedPromptTokens = (uint)update.CachedPromptTokens,
                    },
                    TimeToFirstTokenUs = firstToken,
                    TotalTimeUs = elapsed,
                };
            case FinishReason.Error:
                throw GrpcErrors.Internal(update.Error);
            default:
                if (entry.IsAborted)
                {
                    throw new RpcException(new Status(StatusCode.Cancelled, $"The request '{requestId}' was aborted by an Abort call."));
                }

                if (Overflowed)
                {
                    throw OverflowError();
                }

                // The client cancelled or its deadline passed: gRPC answers for itself.
                cancellationToken.ThrowIfCancellationRequested();
                throw GrpcErrors.Unavailable(update.Error ?? "The server cancelled the request; retry on another replica.");
        }
    }

    private static GenerateResponse Message(GenerateChunk? chunk, GenerateComplete? complete, string requestId, ref bool first)
    {
        var message = chunk is not null ? new GenerateResponse { Chunk = chunk } : new GenerateResponse { Complete = complete };
        if (first)
        {
            message.RequestId = requestId;
            first = false;
        }

        return message;
    }

    private RpcException OverflowError()
        => new(new Status(StatusCode.ResourceExhausted, $"The client read the stream too slowly: more than {_capacity} chunks were waiting, so the request was aborted. Read the stream promptly, or ask for fewer tokens per call."));

    private ulong Microseconds(long from, long to) => (ulong)Math.Max(0, _time.GetElapsedTime(from, to).Ticks / TimeSpan.TicksPerMicrosecond);

    private async Task PumpAsync(int index, ChannelReader<GenerationUpdate> source)
    {
        try
        {
            // The engine always ends a request's channel (with a final update), even when it is cancelled. The pump reads
            // it to the end, after an overflow too, so that the final counts reach the log.
            while (await source.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
            {
                while (source.TryRead(out var update))
                {
                    if (update.IsFinal)
                    {
                        lock (_usage)
                        {
                            _usage.Add(update, 0);
                        }
                    }

                    // The scheduler's own timestamp (Stopwatch, as TimeProvider.System) when it has one: exact, whatever the pump's wake-up latency.
                    var stamp = update.Timestamp != 0 && ReferenceEquals(_time, TimeProvider.System) ? update.Timestamp : _time.GetTimestamp();
                    if (!Overflowed && !_buffer.Writer.TryWrite(new BufferedUpdate(index, update, stamp)))
                    {
                        OnOverflow();
                    }
                }
            }
        }
        finally
        {
            if (Interlocked.Decrement(ref _pumping) == 0)
            {
                _buffer.Writer.TryComplete();
                _pumped.TrySetResult();
            }
        }
    }

    private void OnOverflow()
    {
        if (Interlocked.Exchange(ref _overflowed, 1) != 0)
        {
            return;
        }

        try
        {
            _lifetime.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The call has already ended.
        }

        _buffer.Writer.TryComplete();
    }
}
