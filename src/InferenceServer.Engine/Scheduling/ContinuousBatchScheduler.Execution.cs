// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;
using InferenceServer.Engine.KvCache;
using InferenceServer.Engine.Requests;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Engine.Scheduling;

/// <summary>Running the model for the scheduled rows, then handing each row's logits to the token pipeline.</summary>
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
        for (var i = 0; i < _rows.Count; i++)
        {
            var row = _rows[i];
            var sequence = row.Sequence;
            var tokens = CollectionsMarshal.AsSpan(sequence.Tokens).Slice(sequence.Computed, row.Chunk);
            var target = row.IsDecode || mixed ? _batch : _prefillBatch;
            var rowLogits = sequence.PromptLogprobsPending ? RowLogits.All
                : sequence.Computed + row.Chunk == sequence.Tokens.Count ? RowLogits.Last : RowLogits.None;
            target.AddRow(tokens, sequence.Computed, BlockId.AsInts(CollectionsMarshal.AsSpan(sequence.Blocks)), rowLogits, (long)sequence.Id);
            var argmax = rowLogits == RowLogits.Last && TakesArgmax(sequence);
            _rows[i] = row with { TakesArgmax = argmax };
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

        var started = _time.GetTimestamp();
        try
        {
            if (_batch.RowCount > 0)
            {
                _runner.Forward(_batch, _logits);
                RecordPoolSpeed();
            }

            if (_prefillBatch.RowCount > 0)
            {
                _runner.Forward(_prefillBatch, _logits.AsSpan(_batch.LogitRowCount * vocab));
                RecordPoolSpeed();
            }
        }
        catch (Exception ex)
        {
            OnStepFailed(ex);
            return;
        }

        _observer?.RecordStepTime(_time.GetElapsedTime(started).TotalSeconds, _prefillBatch.RowCount > 0 || _batch.TokenCount > _batch.RowCount);
        _breaker.RecordSuccess();
        ReportCaptureFailure();
        _counters.StepRan();
        UpdatePlacement();
        _pipeline.BeginStep();
        var logitRow = 0;
        var stepTokens = 0;
        for (var i = 0; i < _rows.Count; i++)
        {
            var (sequence, chunk) = _rows[i];
            var start = sequence.Computed;
            sequence.Computed += chunk;
            stepTokens += chunk;
            _kv.CommitFullBlocks(CollectionsMarshal.AsSpan(sequence.Tokens), sequence.Computed, sequence.Blocks, sequence.BlockHashes);
            var finished = false;
            if (sequence.PromptLogprobsPending)
            {
                // Every position came back: position p's logits score prompt token p + 1; the last one is sampled from.
                _pipeline.RecordPromptLogprobs(sequence, start, chunk, _logits.AsSpan(logitRow * vocab, chunk * vocab));
                var last = logitRow + chunk - 1;
                logitRow += chunk;
                if (sequence.Computed == sequence.Tokens.Count)
                {
                    sequence.PromptLogprobsPending = false;
                    finished = _pipeline.Advance(sequence, _logits.AsSpan(last * vocab, vocab));
                }
            }
            else if (sequence.Computed == sequence.Tokens.Count)
            {
                finished = _rows[i].TakesArgmax
                    ? _pipeline.Emit(sequence, ArgmaxAt(logitRow), null)
                    : _pipeline.Advance(sequence, _logits.AsSpan(logitRow * vocab, vocab));
                logitRow++;
            }

            if (finished)
            {
                _running.Remove(sequence);
            }
        }

        _observer?.RecordIterationTokens(stepTokens);
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
        for (var i = 0; i < _rows.Count; i++)
        {
            var row = _rows[i];
            if (!row.IsDecode)
            {
                continue;
            }

            for (var j = i; j > decodes; j--)
            {
                _rows[j] = _rows[j - 1];
            }

            _rows[decodes++] = row;
        }
    }

    /// <summary>
    /// A failed model step: its rows end with an error, and at the breaker's threshold everything else the engine holds
    /// ends with an "unavailable" error rather than running into the same fault. Everything the failure changes (the
    /// engine's health, and at the threshold the failing of all other work) is done before any caller hears of it: a
    /// caller reacting to its error, or a probe right after the cooldown, then sees the state this failure left.
    /// </summary>
    private void OnStepFailed(Exception exception)
    {
        SchedulerLog.StepFailed(_logger, _rows.Count, exception);
        var tripped = _breaker.RecordFailure(out var failures);
        foreach (var row in _rows)
        {
            _running.Remove(row.Sequence);
        }

        if (tripped)
        {
            FailEverything($"The engine is unavailable: {failures} model steps in a row failed (last: {exception.Message}); retry later.");
        }

        foreach (var row in _rows)
        {
            _pipeline.Finish(row.Sequence, FinishReason.Error, string.Empty, $"The model failed while running this request: {exception.GetType().Name}: {exception.Message}");
        }
    }

    /// <summary>Ends every sequence the engine holds (queued, waiting or running) with <paramref name="message"/>.</summary>
    private void FailEverything(string message)
    {
        while (_incoming.Reader.TryRead(out var sequence))
        {
            _waiting.Add(sequence);
        }

        for (var i = _running.Count - 1; i >= 0; i--)
        {
            var sequence = _running[i];
            _running.RemoveAt(i);
            _pipeline.Finish(sequence, FinishReason.Cancelled, string.Empty, message);
        }

        for (var i = _waiting.Count - 1; i >= 0; i--)
        {
            var sequence = _waiting[i];
            _waiting.RemoveAt(i);
            _pipeline.Finish(sequence, FinishReason.Cancelled, string.Empty, message);
        }
    }

    /// <summary>
    /// Logs, once, that the runner stopped capturing decode steps as CUDA graphs (ADR 0011: a capture failed and every
    /// later step runs uncaptured), so a deployment that asked for graphs learns it runs without them.
    /// </summary>
    private void ReportCaptureFailure()
    {
        if (!_captureFailureLogged && _runner is InferenceServer.Onnx.Runtime.IOffloadingRunner { CaptureFailure: { } reason })
        {
            _captureFailureLogged = true;
            SchedulerLog.StepCaptureFailed(_logger, reason);
        }
    }
}
