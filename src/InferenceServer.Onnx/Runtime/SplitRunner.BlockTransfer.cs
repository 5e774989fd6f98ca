// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>The host KV tier's block copies (ADR 0009) over the CPU backends' pages (<see cref="HostPoolBlocks"/>).</summary>
internal sealed partial class SplitRunner : IKvBlockTransfer
{
    private KvPoolRange[]? _poolRanges;

    /// <inheritdoc />
    int IKvBlockTransfer.BlockBytes => HostPoolBlocks.BlockBytes(_backends);

    /// <inheritdoc />
    IReadOnlyList<KvPoolRange> IKvBlockTransfer.Pools => _poolRanges ??= HostPoolBlocks.Ranges(_backends);

    /// <inheritdoc />
    void IKvBlockTransfer.CopyOut(int block, Span<byte> destination) => HostPoolBlocks.PoolOf(_backends, block, out var local).ReadBlock(local, destination);

    /// <inheritdoc />
    void IKvBlockTransfer.CopyIn(int block, ReadOnlySpan<byte> source) => HostPoolBlocks.PoolOf(_backends, block, out var local).WriteBlock(local, source);
}
