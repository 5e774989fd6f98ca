// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Scheduling;

/// <summary>
/// The bounds of the waiting queue: sequences accepted and not yet admitted to the batch, and their prompt tokens
/// (<see cref="SchedulerOptions.MaxQueuedRequests"/>, <see cref="SchedulerOptions.MaxQueuedTokens"/>). Callers reserve
/// room on any thread before anything is queued; the loop gives it back when a sequence is admitted or finishes.
/// </summary>
internal sealed class QueueBounds
{
    private readonly Lock _lock = new();
    private readonly int _maxRequests;
    private readonly long _maxTokens;
    private int _requests;
    private long _tokens;

    /// <summary>Creates the bounds: at most <paramref name="maxRequests"/> sequences and <paramref name="maxTokens"/> prompt tokens.</summary>
    public QueueBounds(int maxRequests, long maxTokens)
    {
        _maxRequests = maxRequests;
        _maxTokens = maxTokens;
    }

    /// <summary>Sequences accepted and not yet admitted (the queue's length).</summary>
    public int Requests => Volatile.Read(ref _requests);

    /// <summary>Prompt tokens of <see cref="Requests"/>.</summary>
    public long Tokens => Interlocked.Read(ref _tokens);

    /// <summary>True when the queue is at either bound, so a new request would be refused (a cheap pre-check; <see cref="TryReserve"/> decides).</summary>
    public bool IsFull
    {
        get
        {
            var queued = Requests;
            return queued >= _maxRequests || (queued > 0 && Tokens >= _maxTokens);
        }
    }

    /// <summary>Reserves room for <paramref name="sequences"/> sequences of <paramref name="tokens"/> prompt tokens in all; false (nothing reserved) when it is short.</summary>
    public bool TryReserve(int sequences, long tokens)
    {
        lock (_lock)
        {
            // The token bound gives way to an empty queue, so that no prompt is refused for ever for its length alone; the
            // sequence bound does not (a request with more choices than the queue holds is refused).
            var queued = Requests;
            if (queued + sequences > _maxRequests || (queued > 0 && Tokens + tokens > _maxTokens))
            {
                return false;
            }

            Interlocked.Add(ref _requests, sequences);
            Interlocked.Add(ref _tokens, tokens);
            return true;
        }
    }

    /// <summary>Stops counting <paramref name="sequence"/> against the queue: admitted to the batch, or finished while waiting.</summary>
    public void Leave(Sequence sequence)
    {
        if (sequence.Queued)
        {
            sequence.Queued = false;
            Interlocked.Decrement(ref _requests);
            Interlocked.Add(ref _tokens, -sequence.PromptLength);
        }
    }
}
