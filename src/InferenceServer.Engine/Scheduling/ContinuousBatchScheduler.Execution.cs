// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using System.Runtime.InteropServices;
using InferenceServer.Engine.Diagnostics;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Sampling;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Engine.Scheduling;

/// <summary>Running the model for the scheduled rows, then sampling, streaming and finishing.</summary>
public sealed partial class ContinuousBatchScheduler
{
    private void Execute()
    {
        // Dense-past graphs pad every row to the longest in the run, so decodes (one token) and prefill chunks run as two
        // batches: a decode never pays for a prompt's length, and the decode batch keeps its shape between steps.
        // A packed runner takes both in one call. A runner that reports each row's argmax lets plain greedy rows skip
        // their logits: when no row in the step needs a distribution, none comes back from the device.
        OrderDecodesFirst();
        _batch.Clear();
        _prefillBatch.Clear();
        var mixed = _runner.RunsMixedBatches;
        var distributions = false;
        _takesArgmax.Clear();
        for (var i = 0; i < _scheduled.Count; i++)
        {
            var sequence = _scheduled[i];
            var chunk = _chunks[i];
            var tokens = CollectionsMarshal.AsSpan(sequence.Tokens).Slice(sequence.Computed, chunk);
            var target = chunk == 1 || mixed ? _batch : _prefillBatch;
            var rowLogits = sequence.PromptLogprobsPending ? RowLogits.All
                : sequence.Computed + chunk == sequence.Tokens.Count ? RowLogits.Last : RowLogits.None;
            target.AddRow(tokens, sequence.Computed, CollectionsMarshal.AsSpan(sequence.Blocks), rowLogits, sequence.Arrival);
            var argmax = rowLogits == RowLogits.Last && TakesArgmax(sequence);
            _takesArgmax.Add(argmax);
            distributions |= rowLogits == RowLogits.All || (rowLogits == RowLogits.Last && !argmax);
        }

        _batch.DistributionsWanted = distributions;
        _prefillBatch.DistributionsWanted = distributions;

        // The host buffer is only needed for distributions: a greedy step on a device runner leaves it as it is.
        var vocab = _model.Spec.VocabularySize;
        var logitRows = _batch.LogitRowCount + _prefillBatch.LogitRowCount;
        if (distributions && _logits.Length < logitRows * vocab)
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

            // Everything the failure changes (the engine's health, and at the threshold the failing of all other work) is
            // done before any caller hears of it: a caller reacting to its error, or a probe right after the cooldown,
            // then sees the state this failure left and is never swept up by it.
            var failures = RecordStepFailure();
            foreach (var sequence in _scheduled)
            {
                _running.Remove(sequence);
            }

            OnStepFailed(ex, failures);
            foreach (var sequence in _scheduled)
            {
                Finish(sequence, FinishReason.Error, string.Empty, $"The model failed while running this request: {ex.GetType().Name}: {ex.Message}");
            }

            return;
        }

        OnStepSucceeded();
        Interlocked.Increment(ref _steps);
        _sampledAt = _time.GetTimestamp();
        _timeTokens = _metrics is { InterTokenLatencyEnabled: true };
        var logitRow = 0;
        var stepTokens = 0;
        for (var i = 0; i < _scheduled.Count; i++)
        {
            var sequence = _scheduled[i];
            var start = sequence.Computed;
            sequence.Computed += _chunks[i];
            stepTokens += _chunks[i];
            _kv.CommitFullBlocks(CollectionsMarshal.AsSpan(sequence.Tokens), sequence.Computed, sequence.Blocks, sequence.BlockHashes);
            if (sequence.PromptLogprobsPending)
            {
                // Every position came back: position p's logits score prompt token p + 1; the last one is sampled from.
                RecordPromptLogprobs(sequence, start, _chunks[i], logitRow);
                var last = logitRow + _chunks[i] - 1;
                logitRow += _chunks[i];
                if (sequence.Computed == sequence.Tokens.Count)
                {
                    sequence.PromptLogprobsPending = false;
                    Advance(sequence, _logits.AsSpan(last * vocab, vocab));
                }
            }
            else if (sequence.Computed == sequence.Tokens.Count)
            {
                if (_takesArgmax[i])
                {
                    Emit(sequence, ArgmaxAt(logitRow), null);
                }
                else
                {
                    Advance(sequence, _logits.AsSpan(logitRow * vocab, vocab));
                }

                logitRow++;
            }
        }

        _metrics?.RecordIterationTokens(stepTokens);
    }

    private void RecordPromptLogprobs(Sequence sequence, int start, int chunk, int firstRow)
    {
        var vocab = _model.Spec.VocabularySize;
        var k = sequence.Request.Sampling.PromptLogprobs ?? 0;
        sequence.PromptLogprobs ??= new TokenLogprobs?[sequence.PromptLength];
        for (var j = 0; j < chunk; j++)
        {
            var next = start + j + 1;
            if (next < sequence.PromptLength)
            {
                var logits = _logits.AsSpan((firstRow + j) * vocab, vocab);
                sequence.PromptLogprobs[next] = LogprobCalculator.Report(logits, sequence.Tokens[next], k);
            }
        }
    }

    /// <summary>
    /// Whether <paramref name="sequence"/>'s next token is the runner's argmax as it stands: the runner reports it, and the
    /// sequence decodes greedily with nothing that changes or reads the distribution (bias, penalties, a constraint,
    /// logprobs, tokens banned until min_tokens).
    /// </summary>
    private bool TakesArgmax(Sequence sequence)
    {
        var sampling = sequence.Request.Sampling;
        return _runner.ReportsArgmax
            && sampling.IsGreedy
            && sampling.Logprobs is null
            && !sampling.HasPenalties
            && sequence.BiasIds is null
            && sequence.Constraint is null
            && (sequence.Generated >= sequence.Request.Stop.MinTokens || sequence.BannedBeforeMinTokens.Length == 0);
    }

    /// <summary>The runner's argmax for logit row <paramref name="logitRow"/> of this step (decode batch first, then prefill).</summary>
    private int ArgmaxAt(int logitRow) => logitRow < _batch.LogitRowCount
        ? _batch.Argmax[logitRow]
        : _prefillBatch.Argmax[logitRow - _batch.LogitRowCount];

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

    /// <summary>
    /// Chooses <paramref name="sequence"/>'s next token from <paramref name="logits"/> (this step's scratch row, changed in
    /// place): logit bias, penalties, constraint mask, then the sampler (temperature, min-p, top-k, top-p); then streams it
    /// and applies the stop conditions.
    /// </summary>
    private void Advance(Sequence sequence, Span<float> logits)
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
            return;
        }

        var token = _sampler.Sample(logits, sampling, ref sequence.Random, banned);
        if (sequence.Constraint is not null && !AcceptByConstraint(sequence, token))
        {
            return;
        }

        var logprobs = sampling.Logprobs is { } k ? LogprobCalculator.Report(_rawLogits.AsSpan(0, logits.Length), token, k) : null;
        Emit(sequence, token, logprobs);
    }

    /// <summary>Appends the chosen <paramref name="token"/> to <paramref name="sequence"/>, streams it, and applies the stop conditions.</summary>
    private void Emit(Sequence sequence, int token, TokenLogprobs? logprobs)
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
            _metrics!.RecordInterTokenLatency(_time.GetElapsedTime(sequence.LastTokenAt, _sampledAt).TotalSeconds);
        }

        sequence.LastTokenAt = _sampledAt;

        var minReached = sequence.Generated >= stop.MinTokens;
        // A constraint that accepted its end allows nothing after it: the sequence ends at that EOS even with ignore_eos.
        var endsAtEos = !stop.IgnoreEos || sequence.Constraint is { IsTerminated: true };
        if ((endsAtEos && Contains(sequence.EosTokenIds, token)) || Contains(stop.StopTokenIds, token))
        {
            sequence.Output.TryWrite(new GenerationUpdate(token, string.Empty, Logprobs: logprobs, PromptLogprobs: promptLogprobs, Timestamp: Stopwatch.GetTimestamp()));
            Complete(sequence, FinishReason.Stop, FlushText(sequence));
            return;
        }

        var text = sequence.Detokenizer?.Append(token) ?? string.Empty;
        var released = minReached ? sequence.Stops.Push(text) : text;
        sequence.Output.TryWrite(new GenerationUpdate(token, released, Logprobs: logprobs, PromptLogprobs: promptLogprobs, Timestamp: Stopwatch.GetTimestamp()));
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
            Log.ConstraintFailed(_logger, sequence.Request.RequestId, ex);
            Complete(sequence, FinishReason.Error, FlushText(sequence), $"The output constraint failed: {ex.Message}", requestFault: true);
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
        Complete(sequence, FinishReason.Error, FlushText(sequence), reason, requestFault: true);
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
            Log.ConstraintFailed(_logger, sequence.Request.RequestId, ex);
            Complete(sequence, FinishReason.Error, FlushText(sequence), $"The output constraint failed: {ex.Message}", requestFault: true);
            return false;
        }

        if (!accepted)
        {
            Complete(sequence, FinishReason.Error, FlushText(sequence), $"The output constraint refused token {token}, which its own mask allowed.");
        }

        return accepted;
    }

    private static string FlushText(Sequence sequence)
    {
        var tail = sequence.Detokenizer?.Flush() ?? string.Empty;
        var released = sequence.Stops.Push(tail);
        return sequence.Stops.Stopped ? released : released + sequence.Stops.Flush();
    }

    private void Complete(Sequence sequence, FinishReason reason, string text, string? error = null, bool requestFault = false)
    {
        _running.Remove(sequence);
        Finish(sequence, reason, text, error, requestFault);
    }

    private void Finish(Sequence sequence, FinishReason reason, string text, string? error, bool requestFault = false)
    {
        LeaveQueue(sequence);
        _kv.Release(sequence.Blocks);
        sequence.BlockHashes.Clear();
        sequence.Penalties?.Dispose();
        sequence.Penalties = null;
        Volatile.Write(ref _usedBlocks, _kv.UsedBlockCount);
        Interlocked.Decrement(ref _activeCount);

        // Counters first: a reader that sees the final update also sees the blocks returned and the metrics recorded.
        // Prompt logprobs not yet handed over (no token was generated) go with the final update.
        var promptLogprobs = sequence.TakePromptLogprobs();
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

        var update = new GenerationUpdate(-1, text, reason, sequence.PromptLength, sequence.Generated, Math.Max(0, sequence.CachedPromptTokens), error, PromptLogprobs: promptLogprobs, Timestamp: Stopwatch.GetTimestamp(), QueueTime: queueTime, TimeToFirstToken: timeToFirstToken, RequestFault: requestFault);
        sequence.Output.TryWrite(update);
        sequence.Output.TryComplete();
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
