// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The host KV tier's block copies (ADR 0009) when attention runs on the host (<c>--device cuda --attention-device
/// cpu</c>): the CPU backends' pages (<see cref="HostPoolBlocks"/>). With attention on the GPU (the local split) the
/// pools are device memory this runner does not copy yet: <see cref="IKvBlockTransfer.BlockBytes"/> is 0 and the engine
/// runs without the tier.
/// </summary>
internal sealed partial class CudaSplitRunner : IKvBlockTransfer
{
    private KvPoolRange[]? _poolRanges;

    /// <inheritdoc />
    int IKvBlockTransfer.BlockBytes => _cuda is null ? HostPoolBlocks.BlockBytes(_hostBackends) : 0;

    /// <inheritdoc />
    IReadOnlyList<KvPoolRange> IKvBlockTransfer.Pools => _poolRanges ??= _cuda is null
        ? HostPoolBlocks.Ranges(_hostBackends)
        : [new KvPoolRange(_cuda.Device, 0, BlockCount)];

    /// <inheritdoc />
    void IKvBlockTransfer.CopyOut(int block, Span<byte> destination) => HostPoolBlocks.PoolOf(_hostBackends, block, out var local).ReadBlock(local, destination);

    /// <inheritdoc />
    void IKvBlockTransfer.CopyIn(int block, ReadOnlySpan<byte> source) => HostPoolBlocks.PoolOf(_hostBackends, block, out var local).WriteBlock(local, source);
}
