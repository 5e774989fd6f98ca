// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.KvCache;

namespace InferenceServer.Engine.Scheduling;

/// <summary>
/// Limits of the continuous batcher and the KV cache it manages. Immutable once built, and valid: each value is checked
/// as it is set, and a bad one throws <see cref="ArgumentOutOfRangeException"/> with a message that names the
/// command-line flag the host maps to it (<c>--max-num-seqs</c>, ...). The scheduler only reads it; the block size it
/// runs with is the runner's (<see cref="ContinuousBatchScheduler.BlockSize"/>), which may be larger than asked.
/// </summary>
public sealed class SchedulerOptions
{
    private readonly int _maxNumSeqs = 64;
    private readonly int _maxNumBatchedTokens = 2048;
    private readonly int _prefillChunkAlignment;
    private readonly KvBudget _kvBudget = new(256L * 1024 * 1024, 16);
    private readonly int _maxQueuedRequests = 1024;
    private readonly long _maxQueuedTokens = 1L << 20;
    private readonly int _maxConsecutiveStepFailures = 3;
    private readonly TimeSpan _faultCooldown = TimeSpan.FromSeconds(30);
    private readonly double _hostKvCacheMemory;

    /// <summary>Most sequences in one model step (<c>--max-num-seqs</c>, vLLM's <c>max_num_seqs</c>). Default 64.</summary>
    public int MaxNumSeqs
    {
        get => _maxNumSeqs;
        init => _maxNumSeqs = OptionChecks.AtLeastOne(value, "max-num-seqs");
    }

    /// <summary>Most new tokens in one model step, decodes and prefill chunks together (<c>--max-num-batched-tokens</c>). Default 2048.</summary>
    public int MaxNumBatchedTokens
    {
        get => _maxNumBatchedTokens;
        init => _maxNumBatchedTokens = OptionChecks.AtLeastOne(value, "max-num-batched-tokens");
    }

    /// <summary>
    /// Tokens per KV block asked for (<c>--block-size</c>). Default 16. The runner may raise it (a paged kernel reads whole
    /// pages); <see cref="ContinuousBatchScheduler.BlockSize"/> is the size in use.
    /// </summary>
    public int BlockSize
    {
        get => _kvBudget.BlockSize;
        init => _kvBudget = _kvBudget with { BlockSize = value };
    }

    /// <summary>
    /// KV-cache size (<c>--kv-cache-memory</c>): bytes when above 1 (suffixes k, m, g accepted on the command line), or a
    /// fraction of this machine's available memory when in (0, 1]. Default 256 MiB.
    /// </summary>
    public double KvCacheMemory
    {
        get => _kvBudget.Memory;
        init => _kvBudget = _kvBudget with { Memory = value };
    }

    /// <summary>
    /// One KV-cache size per attention device of a split model, in <c>--attention-device</c> order (<c>--kv-cache-memory
    /// 20g,64g</c>), each as <see cref="KvCacheMemory"/> reads one, a fraction of that device's free memory; null (the
    /// default): <see cref="KvCacheMemory"/> split evenly.
    /// </summary>
    public IReadOnlyList<double>? KvCachePoolMemory
    {
        get => _kvBudget.PoolMemory;
        init => _kvBudget = _kvBudget with { PoolMemory = value };
    }

    /// <summary>
    /// Sequences (one per prompt and choice) accepted but not yet admitted to the batch before new ones are refused
    /// (HTTP 429, gRPC <c>RESOURCE_EXHAUSTED</c>; <c>--max-queued-requests</c>). Default 1024.
    /// </summary>
    public int MaxQueuedRequests
    {
        get => _maxQueuedRequests;
        init => _maxQueuedRequests = OptionChecks.AtLeastOne(value, "max-queued-requests");
    }

    /// <summary>
    /// Prompt tokens of the queued sequences before new ones are refused, like <see cref="MaxQueuedRequests"/>
    /// (<c>--max-queued-tokens</c>). A request that arrives at an empty queue is accepted whatever its size, so no request
    /// is refused for ever. Default 1,048,576.
    /// </summary>
    public long MaxQueuedTokens
    {
        get => _maxQueuedTokens;
        init => _maxQueuedTokens = OptionChecks.AtLeastOne(value, "max-queued-tokens");
    }

    /// <summary>
    /// Consecutive failed model steps after which the engine reports itself unhealthy (readiness false), fails its queue
    /// and refuses work for <see cref="FaultCooldown"/> (<c>--max-consecutive-step-failures</c>). Default 3.
    /// </summary>
    public int MaxConsecutiveStepFailures
    {
        get => _maxConsecutiveStepFailures;
        init => _maxConsecutiveStepFailures = OptionChecks.AtLeastOne(value, "max-consecutive-step-failures");
    }

    /// <summary>
    /// How long an unhealthy engine refuses work before it accepts requests again to probe the model; a step that then
    /// succeeds makes it healthy (<c>--fault-cooldown</c>). Default 30 seconds.
    /// </summary>
    public TimeSpan FaultCooldown
    {
        get => _faultCooldown;
        init => _faultCooldown = OptionChecks.Positive(value, "fault-cooldown");
    }

    /// <summary>
    /// Host KV tier size (<c>--host-kv-cache-memory</c>, ADR 0009): bytes when above 1, a fraction of the process's available
    /// memory when in (0, 1], 0 for none. A preempted sequence's blocks are copied there and back instead of recomputed,
    /// and prefix-cache blocks the device pool reuses stay there. Default 0 (off).
    /// </summary>
    public double HostKvCacheMemory
    {
        get => _hostKvCacheMemory;
        init => _hostKvCacheMemory = OptionChecks.HostKvCacheMemory(value);
    }

    /// <summary>
    /// Run <see cref="ModelWarmup"/>'s model steps before taking requests (<c>--warmup</c>): every captured decode batch and
    /// every power-of-two prompt step up to <see cref="MaxNumBatchedTokens"/>, so that CUDA-graph captures and ONNX Runtime's
    /// per-shape MoE tactic profiling happen before the server is ready, not in the first requests. Null (the default):
    /// on for the paged CUDA runner and a runner that captures its decode steps (the local split, ADR 0011), off for the
    /// others.
    /// </summary>
    public bool? WarmUp { get; init; }

    /// <summary>Share full KV blocks between requests with the same prefix (<c>--enable-prefix-caching</c>). Default true.</summary>
    public bool EnablePrefixCaching { get; init; } = true;

    /// <summary>
    /// Where the token budget may cut a prompt: with a value above 0, a chunk that the budget ends early ends at a multiple
    /// of this many positions instead (the prompt's last chunk ends where the prompt does), and a prompt that cannot reach
    /// the next multiple in this step waits for the next. <c>--deterministic</c> sets it to the runner's piece length
    /// (512): every cut the budget makes is then at a multiple of 512 or at the prompt's end, and the runner cuts each
    /// chunk at the multiples of 512 inside it, so a prompt is computed in the same pieces whatever shares its steps
    /// (alone or beside 63 decodes, its KV comes from the same computations). Needs <see cref="MaxNumBatchedTokens"/> of at least this plus <see cref="MaxNumSeqs"/>
    /// (room for the next multiple beside a full batch of decodes; the server checks it at start). Default 0: anywhere.
    /// </summary>
    public int PrefillChunkAlignment
    {
        get => _prefillChunkAlignment;
        init => _prefillChunkAlignment = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "The prefill chunk alignment cannot be negative.");
    }

    /// <summary>The KV budget these options give the runner factory: <see cref="KvCacheMemory"/> and <see cref="BlockSize"/>.</summary>
    public KvBudget KvBudget => _kvBudget;
}
