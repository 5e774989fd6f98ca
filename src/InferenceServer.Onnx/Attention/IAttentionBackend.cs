// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// A memory device's share of attention (ADR 0005): it owns the KV pages of a contiguous range of the KV-cache manager's
/// global block ids, [<see cref="FirstBlock"/>, <see cref="FirstBlock"/> + <see cref="BlockCount"/>), appends each step's
/// k and v rows that fall in them, and attends every query row over the KV positions it holds, returning the output and
/// the log-sum-exp per row and head so that the parts of a sequence spread over several backends merge exactly
/// (<see cref="AttentionMerge"/>). Driven by one thread (the split runner's step).
/// </summary>
internal interface IAttentionBackend : IDisposable
{
    /// <summary>The memory device, as <c>--attention-device</c> names it (<c>cpu</c>).</summary>
    string Device { get; }

    /// <summary>The global id of this backend's first block.</summary>
    int FirstBlock { get; }

    /// <summary>Blocks this backend holds.</summary>
    int BlockCount { get; }

    /// <summary>Bytes of KV memory this backend holds.</summary>
    long KvBytes { get; }

    /// <summary>
    /// Whether the step planned last has anything here (tokens to append or KV positions to attend); when false,
    /// <see cref="Attend"/> need not be called and would return 0 and -infinity everywhere.
    /// </summary>
    bool HasWork { get; }

    /// <summary>Reads <paramref name="batch"/>'s block tables once per step: the new tokens' slots and the KV positions of each row held here.</summary>
    void Plan(ForwardBatch batch);

    /// <summary>
    /// For attention call <paramref name="layer"/> (<paramref name="spec"/>): writes the step's k and v rows ([T, ...], all
    /// of the step's tokens; only those whose slots are here are kept) into this backend's pages, then attends every
    /// query row of <paramref name="q"/> over the positions held here, causally. <paramref name="output"/> gets
    /// [T, QueryHeads x ValueWidth] and <paramref name="lse"/> [T, QueryHeads]: 0 and -infinity where a row sees nothing
    /// here. <paramref name="headMask"/> ([T, QueryHeads], or empty) skips the heads it zeroes.
    /// </summary>
    void Attend(int layer, AttentionLayerSpec spec, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<float> headMask, Span<float> output, Span<float> lse);
}
