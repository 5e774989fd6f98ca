// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Engine.Scheduling;

/// <summary>Limits of the continuous batcher and the KV cache it manages.</summary>
public sealed class SchedulerOptions
{
    /// <summary>Most sequences in one model step (<c>max_num_seqs</c>). Default 64.</summary>
    public int MaxNumSeqs { get; set; } = 64;

    /// <summary>Most new tokens in one model step, decodes and prefill chunks together (<c>max_num_batched_tokens</c>). Default 2048.</summary>
    public int MaxNumBatchedTokens { get; set; } = 2048;

    /// <summary>Tokens per KV block. Default 16.</summary>
    public int BlockSize { get; set; } = 16;

    /// <summary>
    /// KV-cache size: bytes when above 1 (suffixes k, m, g accepted on the command line), or a fraction of this
    /// machine's available memory when in (0, 1]. Default 256 MiB.
    /// </summary>
    public double KvCacheMemory { get; set; } = 256L * 1024 * 1024;

    /// <summary>
    /// Sequences (one per prompt and choice) accepted but not yet admitted to the batch before new ones are refused
    /// (HTTP 429, gRPC <c>RESOURCE_EXHAUSTED</c>). Default 1024.
    /// </summary>
    public int MaxQueuedRequests { get; set; } = 1024;

    /// <summary>
    /// Prompt tokens of the queued sequences before new ones are refused, like <see cref="MaxQueuedRequests"/>. A request
    /// that arrives at an empty queue is accepted whatever its size, so no request is refused for ever. Default 1,048,576.
    /// </summary>
    public long MaxQueuedTokens { get; set; } = 1L << 20;

    /// <summary>
    /// Consecutive failed model steps after which the engine reports itself unhealthy (readiness false), fails its queue
    /// and refuses work for <see cref="FaultCooldown"/>. Default 3.
    /// </summary>
    public int MaxConsecutiveStepFailures { get; set; } = 3;

    /// <summary>
    /// How long an unhealthy engine refuses work before it accepts requests again to probe the model; a step that then
    /// succeeds makes it healthy. Default 30 seconds.
    /// </summary>
    public TimeSpan FaultCooldown { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Wraps the model runner the scheduler creates; a test seam to inject faults or stalls around the real runner.
    /// Default null (the runner as is).
    /// </summary>
    internal Func<IModelRunner, IModelRunner>? RunnerDecorator { get; set; }

    /// <summary>Share full KV blocks between requests with the same prefix. Default true.</summary>
    public bool EnablePrefixCaching { get; set; } = true;
}
