// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Observation;

/// <summary>
/// The engine's state as gauges read it, from any thread: requests running and waiting, KV blocks, the prefix cache and
/// preemptions. The scheduler implements it; observers (<see cref="IEngineObserver"/>) read it without knowing the scheduler.
/// </summary>
internal interface IEngineGauges
{
    /// <summary>The served model's name (vLLM's <c>model_name</c> label).</summary>
    string ModelName { get; }

    /// <summary>Tokens per KV block, as the runner holds them.</summary>
    int BlockSize { get; }

    /// <summary>KV blocks in the pool, as the runner holds them.</summary>
    int TotalBlocks { get; }

    /// <summary>KV blocks owned by sequences right now.</summary>
    int UsedBlocks { get; }

    /// <summary>Whether full blocks are shared between prompts with the same prefix.</summary>
    bool PrefixCachingEnabled { get; }

    /// <summary>Requests in the running batch.</summary>
    int RunningRequests { get; }

    /// <summary>Requests submitted and not in the running batch.</summary>
    int WaitingRequests { get; }

    /// <summary>Prefix-cache lookups since start, in tokens.</summary>
    long PrefixCacheQueryTokens { get; }

    /// <summary>Prefix-cache hits since start, in tokens.</summary>
    long PrefixCacheHitTokens { get; }

    /// <summary>Sequences preempted since start.</summary>
    long Preemptions { get; }

    /// <summary>Blocks in the host KV tier (0 when it is off; ADR 0009).</summary>
    int HostTierBlocks => 0;

    /// <summary>Host-tier blocks owned by preempted sequences right now.</summary>
    int HostTierUsedBlocks => 0;

    /// <summary>Prefix-cache lookups the host tier answered (device misses), in tokens.</summary>
    long HostPrefixCacheQueryTokens => 0;

    /// <summary>Of those, hits, in tokens.</summary>
    long HostPrefixCacheHitTokens => 0;

    /// <summary>Blocks copied to the host tier for preempted sequences.</summary>
    long SwappedOutBlocks => 0;

    /// <summary>Blocks copied back from the host tier for resumed sequences.</summary>
    long SwappedInBlocks => 0;

    /// <summary>Tokens computed again after a preemption lost their KV.</summary>
    long RecomputedTokens => 0;

    /// <summary>Seconds the scheduler thread spent inside the runner's host-tier copy calls (queueing them, on a GPU).</summary>
    double HostTierCopyCallSeconds => 0;

    /// <summary>Seconds the runner's steps waited, before running, for the host tier's queued copies out (a GPU runner's demotions and swaps).</summary>
    double HostTierCopyOutWaitSeconds => 0;

    /// <summary>The runner's KV pools.</summary>
    int KvPoolCount => 0;

    /// <summary>The name of pool <paramref name="pool"/> (its device).</summary>
    string KvPoolName(int pool) => string.Empty;

    /// <summary>Blocks of pool <paramref name="pool"/> owned by sequences right now.</summary>
    int KvPoolUsedBlocks(int pool) => 0;

    /// <summary>Blocks pool <paramref name="pool"/> holds (its size, fixed at startup).</summary>
    int KvPoolTotalBlocks(int pool) => 0;

    /// <summary>Measured attention seconds per block and step of pool <paramref name="pool"/> (0: not measured; the placement policy's input).</summary>
    double KvPoolSecondsPerBlock(int pool) => 0;
}
