// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Copies one KV block (every layer, keys and values, in the store's own element type and layout) out of a runner's
/// store into host bytes and back in (ADR 0009): the host KV tier's only access to the runner's memory. Block ids are
/// the KV-cache manager's global ids. Called on the scheduler thread between steps. A copy to or from memory given to
/// <see cref="PinHost"/> may still be running when the call returns: copies run in the order they were asked for; copies
/// out have finished before the runner's next step touches its KV, copies in once their <see cref="CopyInFence"/> has
/// passed (the caller keeps their blocks out of the steps until then), and all of them before the runner is disposed or
/// the pin is released; the caller leaves those host bytes alone until then. Every other copy completes before returning.
/// </summary>
public interface IKvBlockTransfer
{
    /// <summary>
    /// Bytes of one block, all layers, keys and values: the size of the spans <see cref="CopyOut"/> and <see cref="CopyIn"/>
    /// take; 0 when this runner's configuration cannot copy blocks (the CUDA split runner with attention on the GPU).
    /// </summary>
    int BlockBytes { get; }

    /// <summary>The runner's KV pools, in block order (one for a fused runner, one per attention device for a split one).</summary>
    IReadOnlyList<KvPoolRange> Pools { get; }

    /// <summary>Copies block <paramref name="block"/> into <paramref name="destination"/> (<see cref="BlockBytes"/> bytes).</summary>
    void CopyOut(int block, Span<byte> destination);

    /// <summary>Overwrites block <paramref name="block"/> with bytes from <see cref="CopyOut"/> (<see cref="BlockBytes"/> bytes).</summary>
    void CopyIn(int block, ReadOnlySpan<byte> source);

    /// <summary>
    /// Prepares <paramref name="bytes"/> of native host memory at <paramref name="pointer"/>, which must not move or be
    /// freed before the returned handle is disposed, for fast copies (a CUDA runner page-locks it, and its copies to and
    /// from it are queued on a stream of their own); null when this runner has nothing to gain (host stores copy with memcpy).
    /// Disposing the handle waits for the copies still queued and undoes the preparation.
    /// </summary>
    IDisposable? PinHost(IntPtr pointer, long bytes) => null;

    /// <summary>
    /// A fence after every <see cref="CopyIn"/> asked for so far, for a runner whose copies into its blocks may still be
    /// running while its next steps run (ADR 0009's asynchronous copy-in): the scheduler holds the sequences that own those
    /// blocks out of its steps until <see cref="CopyInDone"/> says the fence has passed. 0 (the default) when every copy
    /// into a block has finished before the runner's next step touches its KV.
    /// </summary>
    long CopyInFence() => 0;

    /// <summary>Whether the copies before <paramref name="fence"/> (from <see cref="CopyInFence"/>) have finished; true for 0.</summary>
    bool CopyInDone(long fence) => true;

    /// <summary>
    /// Seconds this runner's steps have waited, before running, for queued copies out to finish (a step may reuse a block a
    /// copy out still reads; ADR 0009): part of the step time, during which no row advances. 0 where every copy finishes
    /// inside its call (host runners, unpinned spans).
    /// </summary>
    double CopyOutWaitSeconds => 0;

    /// <summary>Waits until the copies before <paramref name="fence"/> have finished (before their blocks are freed or reused).</summary>
    void WaitCopyIn(long fence)
    {
    }
}
