// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.KvCache;
using InferenceServer.Onnx.Runtime;
using Microsoft.Extensions.Logging;

namespace InferenceServer.Engine.Scheduling;

/// <summary>
/// The host KV tier (ADR 0009): a preempted sequence's full blocks are copied out before its device blocks are released,
/// and copied back into fresh blocks when it is admitted again, so that only what the copies do not cover is recomputed.
/// </summary>
public sealed partial class ContinuousBatchScheduler
{
    private KvPlacementPolicy? _placement;
    private InferenceServer.Onnx.Runtime.IOffloadingRunner? _offloading;
    private KvPoolSpeed? _poolSpeed;
    private int[] _poolUsed = [];

    /// <summary>The host tier's slots (0 when it is off).</summary>
    internal int HostTierBlocks => _kv.HostTier?.SlotCount ?? 0;

    /// <summary>Host-tier slots owned by preempted sequences right now.</summary>
    internal int HostTierUsedBlocks => _kv.HostTier?.OwnedSlots ?? 0;

    /// <summary>Host-tier prefix lookups (device misses that asked the tier), in tokens.</summary>
    internal long HostPrefixCacheQueryTokens => (_kv.HostTier?.PrefixQueries ?? 0) * _kv.BlockSize;

    /// <summary>Host-tier prefix hits, in tokens.</summary>
    internal long HostPrefixCacheHitTokens => (_kv.HostTier?.PrefixHits ?? 0) * _kv.BlockSize;

    /// <summary>Blocks copied to the host tier for preempted sequences since start.</summary>
    internal long SwappedOutBlocks => _kv.HostTier?.SwappedOut ?? 0;

    /// <summary>Blocks copied back from the host tier for resumed sequences since start.</summary>
    internal long SwappedInBlocks => _kv.HostTier?.SwappedIn ?? 0;

    /// <summary>Seconds the scheduler thread spent inside the runner's host-tier copy calls since start (<see cref="HostKvTier.CopyCallSeconds"/>).</summary>
    internal double HostTierCopyCallSeconds => _kv.HostTier?.CopyCallSeconds ?? 0;

    /// <summary>Seconds the runner's steps waited for the host tier's queued copies out since start (<see cref="HostKvTier.CopyOutWaitSeconds"/>).</summary>
    internal double HostTierCopyOutWaitSeconds => _kv.HostTier?.CopyOutWaitSeconds ?? 0;

    /// <summary>Tokens resumed sequences computed again since start (their KV was lost to a preemption).</summary>
    internal long RecomputedTokens => _counters.RecomputedTokens;

    /// <summary>The runner's KV pools, in block order (one pool named after the runner when it does not say).</summary>
    internal IReadOnlyList<KvPoolRange> KvPools { get; private set; } = [];

    /// <summary>Blocks of <see cref="KvPools"/>[<paramref name="pool"/>] owned by sequences right now.</summary>
    internal int KvPoolUsedBlocks(int pool) => _kv.PoolUsedBlocks(pool);

    /// <summary>The measured attention seconds per block and step of <see cref="KvPools"/>[<paramref name="pool"/>] (0: not measured).</summary>
    internal double KvPoolSecondsPerBlock(int pool) => _poolSpeed?.SecondsPerBlock(pool) ?? 0;

    /// <summary>After a model call of a split runner with several pools: its attention ticks per pool, against the blocks each holds.</summary>
    private void RecordPoolSpeed()
    {
        if (_poolSpeed is null)
        {
            return;
        }

        for (var i = 0; i < _poolUsed.Length; i++)
        {
            _poolUsed[i] = _kv.PoolUsedBlocks(i);
        }

        _poolSpeed.Record(_offloading!.LastStepAttentionTicks, _poolUsed);
    }

    /// <summary>At the end of a step: every <see cref="KvPoolSpeed.Window"/> steps, new measurements replace the placement policy's inputs.</summary>
    private void UpdatePlacement()
    {
        if (_poolSpeed?.EndStep() is not { } inputs)
        {
            return;
        }

        _placement = new KvPlacementPolicy(inputs, parallel: false);
        _kv.SetPlacement(_placement);
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            SchedulerLog.PlacementInputs(_logger, _placement.Describe());
        }
    }

    /// <summary>
    /// Sets up the pools and, when <see cref="SchedulerOptions.HostKvCacheMemory"/> asks for it and the runner can copy
    /// blocks, the host tier; logs the placement inputs at debug level.
    /// </summary>
    /// <exception cref="InvalidOperationException">The host tier is asked for but holds less than one block.</exception>
    private void ConfigureKvTiers(IModelRunner runner, SchedulerOptions options, ILogger logger)
    {
        var transfer = runner as IKvBlockTransfer;
        KvPools = transfer?.Pools ?? [new KvPoolRange("kv", 0, runner.BlockCount)];
        Span<int> counts = stackalloc int[KvPools.Count];
        for (var i = 0; i < counts.Length; i++)
        {
            counts[i] = KvPools[i].BlockCount;
        }

        // The split runners attend their pools one after another: the sequential placement model, measured as steps run.
        _placement = KvPlacementPolicy.FromPools(KvPools, parallel: false);
        _kv.SetPools(counts, _placement);
        if (KvPools.Count > 1 && runner is InferenceServer.Onnx.Runtime.IOffloadingRunner offloading && offloading.LastStepAttentionTicks.Length == KvPools.Count)
        {
            _offloading = offloading;
            _poolSpeed = new KvPoolSpeed([.. KvPools.Select(static p => p.Name)], [.. counts]);
            _poolUsed = new int[KvPools.Count];
        }
        if (logger.IsEnabled(LogLevel.Debug))
        {
            SchedulerLog.PlacementInputs(logger, _placement.Describe());
        }

        if (options.HostKvCacheMemory <= 0)
        {
            return;
        }

        if (transfer is not { BlockBytes: > 0 })
        {
            SchedulerLog.HostTierUnavailable(logger, runner.GetType().Name);
            return;
        }

        var bytes = options.HostKvCacheMemory <= 1
            ? (long)(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes * options.HostKvCacheMemory)
            : (long)options.HostKvCacheMemory;
        // Capped where the tier's token table (block size ints a slot) would outgrow one array.
        var slots = Math.Min(HostKvTier.SlotsFor(bytes, transfer.BlockBytes), Array.MaxLength / runner.BlockSize);
        if (slots < 1)
        {
            throw new InvalidOperationException($"--host-kv-cache-memory: {bytes} bytes hold no KV block of {transfer.BlockBytes} bytes; raise it or give 0 to turn the host tier off.");
        }

        _kv.HostTier = new HostKvTier(slots, runner.BlockSize, transfer);
        SchedulerLog.HostTierReady(logger, slots, transfer.BlockBytes, (long)slots * transfer.BlockBytes, _kv.HostTier.Pinned);
    }

    /// <summary>
    /// Copies <paramref name="sequence"/>'s full computed blocks, in order and as many as fit, to the host tier; none when
    /// the device prefix cache holds every one of them under its hash (with prefix caching on, as a rule): released, they
    /// stay on the device until their blocks are reused, and reuse demotes them to the tier, so the resumed sequence finds
    /// them either way by its prefix lookup, and a copy is made only for a block that actually leaves the device.
    /// </summary>
    private void SwapOut(Sequence sequence)
    {
        sequence.PreemptedComputed = sequence.Computed;
        if (_kv.HostTier is not { } tier || sequence.PromptLogprobsPending)
        {
            return;
        }

        var full = Math.Min(sequence.Computed / _kv.BlockSize, sequence.Blocks.Count);
        if (sequence.HostSlots.Count == 0 && FoundByPrefix(sequence, full))
        {
            SchedulerLog.SwapOutDeferred(_logger, sequence.Request.RequestId, full);
            return;
        }

        for (var b = sequence.HostSlots.Count; b < full; b++)
        {
            if (!tier.TrySwapOut(sequence.Blocks[b], sequence.HostSlots))
            {
                break;
            }
        }

        SchedulerLog.SwappedOut(_logger, sequence.Request.RequestId, sequence.HostSlots.Count, sequence.Computed);
    }

    /// <summary>Whether the device prefix cache holds each of <paramref name="sequence"/>'s first <paramref name="full"/> blocks under its hash.</summary>
    private bool FoundByPrefix(Sequence sequence, int full)
    {
        if (!_kv.PrefixCachingEnabled || sequence.BlockHashes.Count < full)
        {
            return false;
        }

        for (var b = 0; b < full; b++)
        {
            if (!_kv.IsCached(sequence.BlockHashes[b]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// On admission of a preempted <paramref name="sequence"/> (its cached prefix already acquired, and room checked for all
    /// of it): copies its host-tier blocks past that prefix into fresh blocks, frees its slots, and counts what is recomputed.
    /// </summary>
    private void SwapIn(Sequence sequence)
    {
        if (sequence.HostSlots.Count > 0 && _kv.HostTier is { } tier)
        {
            // Never the last token: the model must run at least one position to yield logits.
            var usable = Math.Min(sequence.HostSlots.Count, (sequence.Tokens.Count - 1) / _kv.BlockSize);
            var restored = 0;
            var first = sequence.Blocks.Count;
            for (var b = sequence.Blocks.Count; b < usable && _kv.TryAllocate(1, sequence.Blocks); b++)
            {
                tier.SwapIn(sequence.HostSlots[b], sequence.Blocks[b]);
                restored++;
            }

            if (restored > 0)
            {
                sequence.Computed = sequence.Blocks.Count * _kv.BlockSize;
                // The copies may still be running (a CUDA runner queues them): the sequence waits for them out of the steps.
                sequence.LoadFence = Math.Max(sequence.LoadFence, _kv.MarkLoading(sequence.Blocks, first));
            }

            tier.Release(sequence.HostSlots);
            SchedulerLog.SwappedIn(_logger, sequence.Request.RequestId, restored, sequence.Computed);
        }

        if (sequence.PreemptedComputed > 0)
        {
            _counters.Recomputed(Math.Max(0, sequence.PreemptedComputed - sequence.Computed));
            sequence.PreemptedComputed = 0;
        }
    }
}
