// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using System.Runtime.InteropServices;
using InferenceServer.Engine.Diagnostics;
using InferenceServer.Engine.Requests;

namespace InferenceServer.Engine.Scheduling;

/// <summary>Running the model for the scheduled rows, then sampling, streaming and finishing.</summary>
public sealed partial class ContinuousBatchScheduler
{
    private void Execute()
    {
        // Dense-past graphs pad every row to the longest in the run, so decodes (one token) and prefill chunks run as two
        // batches: a decode never pays for a prompt's length, and the decode batch keeps its shape between steps.
        OrderDecodesFirst();
        _batch.Clear();
        _prefillBatch.Clear();
        for (var i = 0; i < _scheduled.Count; i++)
        {
            var sequence = _scheduled[i];
            var chunk = _chunks[i];
            var tokens = CollectionsMarshal.AsSpan(sequence.Tokens).Slice(sequence.Computed, chunk);
            var target = chunk == 1 ? _batch : _prefillBatch;
            target.AddRow(tokens, sequence.Computed, CollectionsMarshal.AsSpan(sequence.Blocks), sequence.Computed + chunk == sequence.Tokens.Count, sequence.Arrival);
        }

        var vocab = _model.Spec.VocabularySize;
        var logitRows = _batch.LogitRowCount + _prefillBatch.LogitRowCount;
        if (_logits.Length < logitRows * vocab)
        {
            _logits = new float[Math.Max(logitRows, _options.MaxNumSeqs) * vocab];
        }

        try
        {
            if (_batch.RowCount > 0)
            {
                _runner.Forward(_batch, _logits);
            }

            if (_prefillBatch.RowCount > 0)
            {
                _runner.Forward(_prefillBatch, _logits.AsSpan(_batch.LogitRowCount * vocab));
            }
        }
        catch (Exception ex)
        {
            Log.StepFailed(_logger, _scheduled.Count, ex);
            foreach (var sequence in _scheduled)
            {
                _running.Remove(sequence);
                Finish(sequence, FinishReason.Error, string.Empty, $"The model failed while running this request: {ex.Message}");
            }

            return;
        }

        Interlocked.Increment(ref _steps);
        _sampledAt = _time.GetTimestamp();
        _timeTokens = _metrics is { InterTokenLatencyEnabled: true };
        var logitRow = 0;
        for (var i = 0; i < _scheduled.Count; i++)
        {
            var sequence = _scheduled[i];
            sequence.Computed += _chunks[i];
            _kv.CommitFullBlocks(CollectionsMarshal.AsSpan(sequence.Tokens), sequence.Computed, sequence.Blocks, sequence.BlockHashes);
            if (sequence.Computed == sequence.Tokens.Count)
            {
                var logits = _logits.AsSpan(logitRow * vocab, vocab);
                logitRow++;
                Advance(sequence, logits);
            }
        }
    }

    /// <summary>Stable partition of the scheduled rows: one-token rows first, in the order the logits come back.</summary>
    private void OrderDecodesFirst()
    {
        var decodes = 0;
        for (var i = 0; i < _scheduled.Count; i++)
        {
            if (_chunks[i] != 1)
            {
                continue;
            }

            var sequence = _scheduled[i];
            for (var j = i; j > decodes; j--)
            {
                _scheduled[j] = _scheduled[j - 1];
                _chunks[j] = _chunks[j - 1];
            }

            _scheduled[decodes] = sequence;
            _chunks[decodes] = 1;
            decodes++;
        }
    }

    private void Advance(Sequence sequence, ReadOnlySpan<float> logits)
    {
        var stop = sequence.Request.Stop;
        var banned = sequence.Generated < stop.MinTokens ? sequence.BannedBeforeMinTokens : [];
        var token = _sampler.Sample(logits, sequence.Request.Sampling, ref sequence.Random, banned);
        sequence.Tokens.Add(token);
        if (sequence.FirstTokenAt == 0)
        {
            sequence.FirstTokenAt = _sampledAt;
        }
        else if (_timeTokens)
        {
            _metrics!.RecordInterTokenLatency(_time.GetElapsedTime(sequence.LastTokenAt, _sampledAt).TotalSeconds);
        }

        sequence.LastTokenAt = _sampledAt;

        var minReached = sequence.Generated >= stop.MinTokens;
        if ((!stop.IgnoreEos && Contains(sequence.EosTokenIds, token)) || Contains(stop.StopTokenIds, token))
        {
            sequence.Output.TryWrite(new GenerationUpdate(token, string.Empty));
            Complete(sequence, FinishReason.Stop, FlushText(sequence));
            return;
        }

        var text = sequence.Detokenizer?.Append(token) ?? string.Empty;
        var released = minReached ? sequence.Stops.Push(text) : text;
        sequence.Output.TryWrite(new GenerationUpdate(token, released));
        if (sequence.Stops.Stopped)
        {
            Complete(sequence, FinishReason.Stop, string.Empty);
            return;
        }

        if (sequence.Generated >= stop.MaxTokens || sequence.Tokens.Count >= _model.Spec.ContextLength)
        {
            Complete(sequence, FinishReason.Length, FlushText(sequence));
        }
    }

    private static string FlushText(Sequence sequence)
    {
        var tail = sequence.Detokenizer?.Flush() ?? string.Empty;
        var released = sequence.Stops.Push(tail);
        return sequence.Stops.Stopped ? released : released + sequence.Stops.Flush();
    }

    private void Complete(Sequence sequence, FinishReason reason, string text)
    {
        _running.Remove(sequence);
        Finish(sequence, reason, text, null);
    }

    private void Finish(Sequence sequence, FinishReason reason, string text, string? error)
    {
        _kv.Release(sequence.Blocks);
        sequence.BlockHashes.Clear();
        Volatile.Write(ref _usedBlocks, _kv.UsedBlockCount);
        Interlocked.Decrement(ref _activeCount);

        // Counters first: a reader that sees the final update also sees the blocks returned and the metrics recorded.
        var now = _time.GetTimestamp();
        var queueTime = _time.GetElapsedTime(sequence.SubmittedAt, sequence.ScheduledAt != 0 ? sequence.ScheduledAt : now);
        TimeSpan? timeToFirstToken = sequence.FirstTokenAt != 0 ? _time.GetElapsedTime(sequence.SubmittedAt, sequence.FirstTokenAt) : null;
        _metrics?.RequestFinished(
            reason,
            sequence.PromptLength,
            sequence.Generated,
            queueTime.TotalSeconds,
            timeToFirstToken?.TotalSeconds,
            sequence.FirstTokenAt != 0 ? _time.GetElapsedTime(sequence.ScheduledAt, sequence.FirstTokenAt).TotalSeconds : null,
            sequence.FirstTokenAt != 0 ? _time.GetElapsedTime(sequence.FirstTokenAt, now).TotalSeconds : null,
            _time.GetElapsedTime(sequence.SubmittedAt, now).TotalSeconds);
        if (EngineTelemetry.Source.HasListeners())
        {
            TraceFinished(sequence, reason, now);
        }

        var update = new GenerationUpdate(-1, text, reason, sequence.PromptLength, sequence.Generated, Math.Max(0, sequence.CachedPromptTokens), error, queueTime, timeToFirstToken);
        sequence.Output.TryWrite(update);
        sequence.Output.TryComplete();
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
                [id, new("gen_ai.usage.output_tokens", sequence.Generated), new("gen_ai.response.finish_reasons", InferenceMetrics.FinishedReasonLabel(reason))],
                reason == FinishReason.Error);
        }
    }

    private static void EmitSpan(Sequence sequence, string name, DateTimeOffset start, DateTimeOffset end, KeyValuePair<string, object?>[] tags, bool failed)
    {
        // Runs on the scheduler thread, where no span is current: stopping it leaves none current either.
        var activity = EngineTelemetry.Source.StartActivity(name, ActivityKind.Internal, sequence.ParentContext, tags, links: null, startTime: start);
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
