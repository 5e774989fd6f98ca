// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Scheduling;

/// <summary>Choosing each step's rows: running sequences first, then admissions, within the token and block budgets.</summary>
public sealed partial class ContinuousBatchScheduler
{
    private void Schedule()
    {
        _rows.Clear();
        var budget = _options.MaxNumBatchedTokens;

        // Running sequences in priority/arrival order: decodes take one token each, an unfinished prefill takes a chunk.
        for (var i = 0; i < _running.Count && budget > 0;)
        {
            var sequence = _running[i];
            if (IsLoading(sequence))
            {
                // Its KV is still arriving from the host tier: the others step meanwhile.
                i++;
                continue;
            }

            var chunk = ChunkFor(sequence, budget);
            if (chunk == 0)
            {
                // An aligned prompt that cannot reach its next boundary in what is left of this step's budget.
                i++;
                continue;
            }

            if (!EnsureBlocks(sequence, sequence.Computed + chunk))
            {
                // The sequence itself was preempted (it was the newest); everything after it is newer still.
                break;
            }

            _rows.Add(new ScheduledRow(sequence, chunk));
            budget -= chunk;
            i++;
        }

        // Admissions, while there is room in the batch and in the cache for the whole remaining prompt.
        for (var w = 0; w < _waiting.Count && budget > 0 && _running.Count < _options.MaxNumSeqs;)
        {
            var sequence = _waiting[w];
            if (IsWaitingForGroupPrompt(sequence))
            {
                // A sibling is computing the shared prompt; admitting this one now would compute it twice.
                w++;
                continue;
            }

            if (sequence.Blocks.Count == 0)
            {
                // Prompt logprobs need the logits of every prompt position, so such a prompt is computed, not looked up.
                var cached = sequence.PromptLogprobsPending ? 0 : _kv.AcquireCachedPrefix(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(sequence.Tokens), sequence.Blocks, sequence.BlockHashes);
                sequence.Computed = cached;
                sequence.LoadFence = sequence.PromptLogprobsPending ? 0 : _kv.LastAcquiredFence;
                if (sequence.CachedPromptTokens < 0)
                {
                    sequence.CachedPromptTokens = Math.Min(cached, sequence.PromptLength);
                }
            }

            var needed = _kv.BlocksFor(sequence.Tokens.Count + 1) - sequence.Blocks.Count;
            if (needed > _kv.FreeBlockCount)
            {
                // Head-of-line: later requests wait too (first come, first served); give the prefix back meanwhile.
                _kv.Release(sequence.Blocks);
                sequence.BlockHashes.Clear();
                sequence.Computed = 0;
                sequence.LoadFence = 0;
                break;
            }

            _waiting.RemoveAt(w);
            _running.Add(sequence);
            _queue.Leave(sequence);
            if (sequence.ScheduledAt == 0)
            {
                sequence.ScheduledAt = _time.GetTimestamp();
            }

            SwapIn(sequence);
            if (IsLoading(sequence))
            {
                // Admitted with its blocks, which are still being copied in: it joins the steps once they are there.
                sequence.LoadingSince = _time.GetTimestamp();
                continue;
            }

            var chunk = ChunkFor(sequence, budget);
            if (chunk == 0)
            {
                // Admitted, but its first aligned chunk does not fit what is left: it starts next step, and later
                // requests wait behind it (first come, first served).
                break;
            }

            _kv.TryAllocate(_kv.BlocksFor(sequence.Computed + chunk) - sequence.Blocks.Count, sequence.Blocks);
            _rows.Add(new ScheduledRow(sequence, chunk));
            budget -= chunk;
        }
    }

    /// <summary>Whether <paramref name="sequence"/>'s blocks are still being copied in from the host tier (clears its fence once passed).</summary>
    private bool IsLoading(Sequence sequence)
    {
        if (sequence.LoadFence == 0)
        {
            return false;
        }

        if (_kv.IsLoaded(sequence.LoadFence))
        {
            sequence.LoadFence = 0;
            if (sequence.LoadingSince != 0)
            {
                _observer?.RecordKvLoadWait(_time.GetElapsedTime(sequence.LoadingSince).TotalSeconds);
                sequence.LoadingSince = 0;
            }

            return false;
        }

        return true;
    }

    /// <summary>
    /// When a step has nothing to run and some running sequences are still loading: waits for the first of their fences,
    /// so that the loop does not spin while the copies finish.
    /// </summary>
    private void WaitForLoads()
    {
        var first = 0L;
        foreach (var sequence in _running)
        {
            if (IsLoading(sequence) && (first == 0 || sequence.LoadFence < first))
            {
                first = sequence.LoadFence;
            }
        }

        if (first != 0)
        {
            _kv.WaitLoaded(first);
            _counters.LoadWaited();
        }
    }

    /// <summary>
    /// The tokens <paramref name="sequence"/> computes this step within <paramref name="budget"/>: all that remain, or what
    /// the budget allows, cut back to a multiple of <see cref="SchedulerOptions.PrefillChunkAlignment"/> positions (rounded
    /// up to whole blocks) when one is set (0 when that leaves nothing: the prompt waits for a step with more room).
    /// </summary>
    private int ChunkFor(Sequence sequence, int budget)
    {
        var chunk = Math.Min(sequence.Remaining, budget);
        var alignment = _options.PrefillChunkAlignment;
        if (alignment > 0 && chunk < sequence.Remaining)
        {
            // In whole KV blocks, as the runner's pieces are (OnnxSessionOptions.DeterministicChunkTokens rounded up).
            alignment = (alignment + _kv.BlockSize - 1) / _kv.BlockSize * _kv.BlockSize;
            var end = (sequence.Computed + chunk) / alignment * alignment;
            chunk = Math.Max(0, end - sequence.Computed);
        }

        return chunk;
    }

    private bool IsWaitingForGroupPrompt(Sequence sequence)
    {
        var group = sequence.Request.PrefixGroup;
        if (group is null || !_kv.PrefixCachingEnabled || sequence.PromptLogprobsPending)
        {
            return false;
        }

        // The tokens a sibling can take from the cache: the prompt's full blocks, short of the last token.
        var shared = (sequence.PromptLength - 1) / _kv.BlockSize * _kv.BlockSize;
        foreach (var running in _running)
        {
            if (ReferenceEquals(running.Request.PrefixGroup, group) && running.Computed < shared)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Makes <paramref name="sequence"/>'s block table cover <paramref name="tokens"/> tokens, preempting the newest
    /// running sequences while blocks are short. False when <paramref name="sequence"/> itself had to be preempted.
    /// </summary>
    private bool EnsureBlocks(Sequence sequence, int tokens)
    {
        var needed = _kv.BlocksFor(tokens) - sequence.Blocks.Count;
        while (needed > _kv.FreeBlockCount)
        {
            var victim = _running[^1];
            Preempt(victim);
            if (ReferenceEquals(victim, sequence))
            {
                return false;
            }
        }

        if (needed > 0)
        {
            _kv.TryAllocate(needed, sequence.Blocks);
        }

        return true;
    }

    private void Preempt(Sequence sequence)
    {
        _running.Remove(sequence);
        SwapOut(sequence);
        _kv.Release(sequence.Blocks);
        sequence.BlockHashes.Clear();
        sequence.Computed = 0;
        sequence.LoadFence = 0;
        sequence.LoadingSince = 0;
        _counters.Preempted();
        InsertWaiting(sequence);
        SchedulerLog.Preempted(_logger, sequence.Request.RequestId);
    }
}
