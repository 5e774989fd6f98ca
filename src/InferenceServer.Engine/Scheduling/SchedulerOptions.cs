// Licensed under the MIT License. See LICENSE in the repository root.
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

    /// <summary>Requests waiting for admission before new ones are refused (HTTP 429). Default 1024.</summary>
    public int MaxQueuedRequests { get; set; } = 1024;

    /// <summary>Share full KV blocks between requests with the same prefix. Default true.</summary>
    public bool EnablePrefixCaching { get; set; } = true;
}
