// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using System.Runtime.InteropServices;
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

        var minReached = sequence.Generated >= stop.MinTokens;
        if ((!stop.IgnoreEos && Contains(sequence.EosTokenIds, token)) || Contains(stop.StopTokenIds, token))
        {
            sequence.Output.TryWrite(new GenerationUpdate(token, string.Empty, Timestamp: Stopwatch.GetTimestamp()));
            Complete(sequence, FinishReason.Stop, FlushText(sequence));
            return;
        }

        var text = sequence.Detokenizer?.Append(token) ?? string.Empty;
        var released = minReached ? sequence.Stops.Push(text) : text;
        sequence.Output.TryWrite(new GenerationUpdate(token, released, Timestamp: Stopwatch.GetTimestamp()));
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

        // Counters first: a reader that sees the final update also sees the blocks returned.
        var update = new GenerationUpdate(-1, text, reason, sequence.PromptLength, sequence.Generated, Math.Max(0, sequence.CachedPromptTokens), error, Stopwatch.GetTimestamp());
        sequence.Output.TryWrite(update);
        sequence.Output.TryComplete();
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
