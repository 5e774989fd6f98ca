// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using System.Runtime.InteropServices;
using InferenceServer.Engine.KvCache;
using InferenceServer.Engine.Observation;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Sampling;
using InferenceServer.Onnx.Runtime;
using Microsoft.Extensions.Logging;

namespace InferenceServer.Engine.Scheduling;

/// <summary>
/// What happens to a sequence after the model ran its row: advance (logit bias, penalties, constraint mask, sampling),
/// emit (append the token, stream it, apply the stop conditions) and finish (give back its blocks and queue room, record
/// its metrics and spans, send the final update). The loop decides which rows run; this decides what their tokens do.
/// Owned by the scheduler loop; not thread-safe. Allocation-free per token beyond what a request asks for (logprobs).
/// </summary>
internal sealed class TokenPipeline
{
    private readonly ModelSpec _spec;
    private readonly KvCacheManager _kv;
    private readonly QueueBounds _queue;
    private readonly SchedulerCounters _counters;
    private readonly IEngineObserver? _observer;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Sampler _sampler = new();
    private readonly float[] _rawLogits;
    private long _sampledAt;
    private bool _timeTokens;

    /// <summary>Creates the pipeline over the loop's KV cache, queue bounds and counters.</summary>
    public TokenPipeline(ModelSpec spec, KvCacheManager kv, QueueBounds queue, SchedulerCounters counters, IEngineObserver? observer, TimeProvider time, ILogger logger)
    {
        _spec = spec;
        _kv = kv;
        _queue = queue;
        _counters = counters;
        _observer = observer;
        _time = time;
        _logger = logger;
        _rawLogits = new float[spec.VocabularySize];
    }

    /// <summary>Starts a step's sampling: every token of the step is stamped with this time.</summary>
    public void BeginStep()
    {
        _sampledAt = _time.GetTimestamp();
        _timeTokens = _observer is { InterTokenLatencyEnabled: true };
    }

    /// <summary>
    /// Scores the prompt tokens after positions [<paramref name="start"/>, <paramref name="start"/> + <paramref name="chunk"/>)
    /// of <paramref name="sequence"/> from <paramref name="logits"/> (one row per position): position p's logits score prompt token p + 1.
    /// </summary>
    public void RecordPromptLogprobs(Sequence sequence, int start, int chunk, ReadOnlySpan<float> logits)
    {
        var vocab = _spec.VocabularySize;
        var k = sequence.Request.Sampling.PromptLogprobs ?? 0;
        sequence.PromptLogprobs ??= new TokenLogprobs?[sequence.PromptLength];
        for (var j = 0; j < chunk; j++)
        {
            var next = start + j + 1;
            if (next < sequence.PromptLength)
            {
                sequence.PromptLogprobs[next] = LogprobCalculator.Report(logits.Slice(j * vocab, vocab), sequence.Tokens[next], k);
            }
        }
    }

    /// <summary>
    /// Chooses <paramref name="sequence"/>'s next token from <paramref name="logits"/> (this step's scratch row, changed in
    /// place): logit bias, penalties, constraint mask, then the sampler (temperature, min-p, top-k, top-p); then streams it
    /// and applies the stop conditions. True when the sequence finished (the caller takes it out of the running set).
    /// </summary>
    public bool Advance(Sequence sequence, Span<float> logits)
    {
        var sampling = sequence.Request.Sampling;
        var stop = sequence.Request.Stop;
        var banned = sequence.Generated < stop.MinTokens ? sequence.BannedBeforeMinTokens : [];

        // Logprobs are of the raw distribution: keep the row before bias, penalties and the mask change it.
        if (sampling.Logprobs is not null)
        {
            logits.CopyTo(_rawLogits);
        }

        ApplyBiasAndPenalties(sequence, logits);
        if (sequence.Constraint is { } constraint && !MaskByConstraint(sequence, constraint, logits, banned))
        {
            return true;
        }

        var token = _sampler.Sample(logits, sampling, ref sequence.Random, banned);
        if (sequence.Constraint is not null && !AcceptByConstraint(sequence, token))
        {
            return true;
        }

        var logprobs = sampling.Logprobs is { } k ? LogprobCalculator.Report(_rawLogits.AsSpan(0, logits.Length), token, k) : null;
        return Emit(sequence, token, logprobs);
    }

    /// <summary>
    /// Appends the chosen <paramref name="token"/> to <paramref name="sequence"/>, streams it, and applies the stop
    /// conditions. True when the sequence finished.
    /// </summary>
    public bool Emit(Sequence sequence, int token, TokenLogprobs? logprobs)
    {
        var stop = sequence.Request.Stop;
        var promptLogprobs = sequence.Generated == 0 ? sequence.TakePromptLogprobs() : null;
        sequence.Tokens.Add(token);
        sequence.Penalties?.AddOutput(token);

        if (sequence.FirstTokenAt == 0)
        {
            sequence.FirstTokenAt = _sampledAt;
        }
        else if (_timeTokens)
        {
            _observer!.RecordInterTokenLatency(_time.GetElapsedTime(sequence.LastTokenAt, _sampledAt).TotalSeconds);
        }

        sequence.LastTokenAt = _sampledAt;

        var minReached = sequence.Generated >= stop.MinTokens;
        // A constraint that accepted its end allows nothing after it: the sequence ends at that EOS even with ignore_eos.
        var endsAtEos = !stop.IgnoreEos || sequence.Constraint is { IsTerminated: true };
        if ((endsAtEos && Contains(sequence.EosTokenIds, token)) || Contains(stop.StopTokenIds, token))
        {
            sequence.Output.TryWrite(new GenerationUpdate(token, string.Empty, Logprobs: logprobs, PromptLogprobs: promptLogprobs, Timestamp: Stopwatch.GetTimestamp()));
            Finish(sequence, FinishReason.Stop, FlushText(sequence), null);
            return true;
        }

        var text = sequence.Detokenizer?.Append(token) ?? string.Empty;
        var released = minReached ? sequence.Stops.Push(text) : text;
        sequence.Output.TryWrite(new GenerationUpdate(token, released, Logprobs: logprobs, PromptLogprobs: promptLogprobs, Timestamp: Stopwatch.GetTimestamp()));
        if (sequence.Stops.Stopped)
        {
            Finish(sequence, FinishReason.Stop, string.Empty, null);
            return true;
        }

        if (sequence.Generated >= stop.MaxTokens || sequence.Tokens.Count >= _spec.ContextLength)
        {
            Finish(sequence, FinishReason.Length, FlushText(sequence), null);
            return true;
        }

        return false;
    }

    /// <summary>
    /// Ends <paramref name="sequence"/>: gives back its queue room and KV blocks, counts it, records its metrics and spans,
    /// and sends the final update (<paramref name="text"/>, <paramref name="reason"/>, <paramref name="error"/>) and
    /// completes its channel. <paramref name="requestFault"/>: the request itself caused the error (a 4xx, not a 5xx).
    /// </summary>
    public void Finish(Sequence sequence, FinishReason reason, string text, string? error, bool requestFault = false)
    {
        _queue.Leave(sequence);
        _kv.Release(sequence.Blocks);
        _kv.HostTier?.Release(sequence.HostSlots);
        sequence.BlockHashes.Clear();
        sequence.Penalties?.Dispose();
        sequence.Penalties = null;
        _counters.UsedBlocks = _kv.UsedBlockCount;
        _counters.RequestEnded();

        // Counters first: a reader that sees the final update also sees the blocks returned and the metrics recorded.
        // Prompt logprobs not yet handed over (no token was generated) go with the final update.
        var promptLogprobs = sequence.TakePromptLogprobs();
        var now = _time.GetTimestamp();
        var queueTime = _time.GetElapsedTime(sequence.SubmittedAt, sequence.ScheduledAt != 0 ? sequence.ScheduledAt : now);
        TimeSpan? timeToFirstToken = sequence.FirstTokenAt != 0 ? _time.GetElapsedTime(sequence.SubmittedAt, sequence.FirstTokenAt) : null;
        _observer?.RequestFinished(
            reason,
            sequence.PromptLength,
            sequence.Generated,
            queueTime.TotalSeconds,
            timeToFirstToken?.TotalSeconds,
            sequence.FirstTokenAt != 0 ? _time.GetElapsedTime(sequence.ScheduledAt, sequence.FirstTokenAt).TotalSeconds : null,
            sequence.FirstTokenAt != 0 ? _time.GetElapsedTime(sequence.FirstTokenAt, now).TotalSeconds : null,
            _time.GetElapsedTime(sequence.SubmittedAt, now).TotalSeconds);
        if (EngineActivity.Source.HasListeners())
        {
            TraceFinished(sequence, reason, now);
        }

        var update = new GenerationUpdate(-1, text, reason, sequence.PromptLength, sequence.Generated, Math.Max(0, sequence.CachedPromptTokens), error, PromptLogprobs: promptLogprobs, Timestamp: Stopwatch.GetTimestamp(), QueueTime: queueTime, TimeToFirstToken: timeToFirstToken, RequestFault: requestFault);
        sequence.Output.TryWrite(update);
        sequence.Output.TryComplete();
    }

    private void ApplyBiasAndPenalties(Sequence sequence, Span<float> logits)
    {
        if (sequence.BiasIds is { } ids)
        {
            var values = sequence.BiasValues!;
            for (var i = 0; i < ids.Length; i++)
            {
                logits[ids[i]] += values[i];
            }
        }

        var sampling = sequence.Request.Sampling;
        if (sampling.HasPenalties)
        {
            sequence.Penalties ??= new PenaltyCounts(logits.Length, CollectionsMarshal.AsSpan(sequence.Tokens), sequence.PromptLength, sequence.Tokens.Count + sequence.Request.Stop.MaxTokens);
            sequence.Penalties.Apply(logits, sampling);
        }
    }

    /// <summary>Applies the constraint's mask; false (and the request finished with an error) when nothing is left to pick.</summary>
    private bool MaskByConstraint(Sequence sequence, ITokenConstraint constraint, Span<float> logits, ReadOnlySpan<int> banned)
    {
        try
        {
            constraint.MaskLogits(logits);
        }
        catch (Exception ex)
        {
            SchedulerLog.ConstraintFailed(_logger, sequence.Request.RequestId, ex);
            Finish(sequence, FinishReason.Error, FlushText(sequence), $"The output constraint failed: {ex.Message}", requestFault: true);
            return false;
        }

        for (var i = 0; i < logits.Length; i++)
        {
            if (logits[i] > float.NegativeInfinity && !Contains(banned, i))
            {
                return true;
            }
        }

        var reason = banned.IsEmpty
            ? "The output constraint allows no token at this point: every token is masked."
            : "The output constraint allows no token at this point: it allows only end-of-sequence or stop tokens, which min_tokens forbids yet.";
        Finish(sequence, FinishReason.Error, FlushText(sequence), reason, requestFault: true);
        return false;
    }

    /// <summary>Tells the constraint the chosen token; false (and the request finished with an error) when it refuses it.</summary>
    private bool AcceptByConstraint(Sequence sequence, int token)
    {
        bool accepted;
        try
        {
            accepted = sequence.Constraint!.Accept(token);
        }
        catch (Exception ex)
        {
            SchedulerLog.ConstraintFailed(_logger, sequence.Request.RequestId, ex);
            Finish(sequence, FinishReason.Error, FlushText(sequence), $"The output constraint failed: {ex.Message}", requestFault: true);
            return false;
        }

        if (!accepted)
        {
            Finish(sequence, FinishReason.Error, FlushText(sequence), $"The output constraint refused token {token}, which its own mask allowed.");
        }

        return accepted;
    }

    private static string FlushText(Sequence sequence)
    {
        var tail = sequence.Detokenizer?.Flush() ?? string.Empty;
        var released = sequence.Stops.Push(tail);
        return sequence.Stops.Stopped ? released : released + sequence.Stops.Flush();
    }

    /// <summary>Emits the finished sequence's queue, prefill and decode spans, after the fact, with their real start and end times.</summary>
    private void TraceFinished(Sequence sequence, FinishReason reason, long now)
    {
        var nowUtc = _time.GetUtcNow();
        DateTimeOffset At(long timestamp) => nowUtc - _time.GetElapsedTime(timestamp, now);

        var scheduledAt = sequence.ScheduledAt != 0 ? sequence.ScheduledAt : now;
        var id = new KeyValuePair<string, object?>("inference.request_id", sequence.Request.RequestId);
        EmitSpan(sequence, "queue", At(sequence.SubmittedAt), At(scheduledAt), [id], sequence.ScheduledAt == 0 && reason == FinishReason.Error);
        if (sequence.ScheduledAt == 0)
        {
            return;
        }

        var firstTokenAt = sequence.FirstTokenAt != 0 ? sequence.FirstTokenAt : now;
        EmitSpan(
            sequence,
            "prefill",
            At(sequence.ScheduledAt),
            At(firstTokenAt),
            [id, new("gen_ai.usage.input_tokens", sequence.PromptLength), new("inference.cached_tokens", Math.Max(0, sequence.CachedPromptTokens))],
            sequence.FirstTokenAt == 0 && reason == FinishReason.Error);
        if (sequence.FirstTokenAt != 0)
        {
            EmitSpan(
                sequence,
                "decode",
                At(sequence.FirstTokenAt),
                At(now),
                [id, new("gen_ai.usage.output_tokens", sequence.Generated), new("gen_ai.response.finish_reasons", EngineActivity.FinishReasonLabel(reason))],
                reason == FinishReason.Error);
        }
    }

    private static void EmitSpan(Sequence sequence, string name, DateTimeOffset start, DateTimeOffset end, KeyValuePair<string, object?>[] tags, bool failed)
    {
        // Runs on the scheduler thread, where no span is current: stopping it leaves none current either.
        var activity = EngineActivity.Source.StartActivity(name, ActivityKind.Internal, sequence.ParentContext, tags, links: null, startTime: start);
        if (activity is null)
        {
            return;
        }

        if (failed)
        {
            activity.SetStatus(ActivityStatusCode.Error);
        }

        activity.SetEndTime(end.UtcDateTime);
        activity.Stop();
    }

    private static bool Contains(ReadOnlySpan<int> ids, int token)
    {
        for (var i = 0; i < ids.Length; i++)
        {
            if (ids[i] == token)
            {
                return true;
            }
        }

        return false;
    }

    private static bool Contains(IReadOnlyList<int> ids, int token)
    {
        for (var i = 0; i < ids.Count; i++)
        {
            if (ids[i] == token)
            {
                return true;
            }
        }

        return false;
    }
}
