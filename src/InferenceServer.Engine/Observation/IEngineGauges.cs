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
}
