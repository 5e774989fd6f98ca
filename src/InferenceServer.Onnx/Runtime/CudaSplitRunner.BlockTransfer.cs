// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The host KV tier's block copies (ADR 0009) when attention runs on the host (<c>--device cuda --attention-device
/// cpu</c>): the CPU backends' pages (<see cref="HostPoolBlocks"/>). With attention on the GPU (the local split) the
/// pools are device memory this runner does not copy yet: <see cref="IKvBlockTransfer.BlockBytes"/> is 0 and the engine
/// runs without the tier; so does a mixed placement (a GPU pool beside host pools), whose GPU blocks it does not copy either.
/// </summary>
internal sealed partial class CudaSplitRunner : IKvBlockTransfer
{
    private KvPoolRange[]? _poolRanges;

    /// <inheritdoc />
    int IKvBlockTransfer.BlockBytes => _cuda is null && _mixed is null ? HostPoolBlocks.BlockBytes(_hostBackends) : 0;

    /// <inheritdoc />
    IReadOnlyList<KvPoolRange> IKvBlockTransfer.Pools => _poolRanges ??= _cuda is not null
        ? [new KvPoolRange(_cuda.Device, 0, BlockCount)]
        : _mixed is null ? HostPoolBlocks.Ranges(_hostBackends) : MixedRanges();

    private KvPoolRange[] MixedRanges()
    {
        var ranges = new List<KvPoolRange>(_hostBackends.Length + 1) { new(_mixed!.Device, _mixed.FirstBlock, _mixed.BlockCount) };
        ranges.AddRange(HostPoolBlocks.Ranges(_hostBackends));
        ranges.Sort(static (a, b) => a.FirstBlock.CompareTo(b.FirstBlock));
        return [.. ranges];
    }

    /// <inheritdoc />
    void IKvBlockTransfer.CopyOut(int block, Span<byte> destination) => HostPoolBlocks.PoolOf(_hostBackends, block, out var local).ReadBlock(local, destination);

    /// <inheritdoc />
    void IKvBlockTransfer.CopyIn(int block, ReadOnlySpan<byte> source) => HostPoolBlocks.PoolOf(_hostBackends, block, out var local).WriteBlock(local, source);
}
