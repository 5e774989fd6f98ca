// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The host KV tier's block copies (ADR 0009) over the CPU backends' pages: a global block lives in the one backend whose
/// range holds it, and is one contiguous run of its <see cref="HostKvPool"/> (<see cref="HostKvPool.ReadBlock"/>).
/// </summary>
internal sealed partial class SplitRunner : IKvBlockTransfer
{
    private KvPoolRange[]? _poolRanges;

    /// <inheritdoc />
    int IKvBlockTransfer.BlockBytes => checked((int)PoolOf(0, out _).BytesPerBlock);

    /// <inheritdoc />
    IReadOnlyList<KvPoolRange> IKvBlockTransfer.Pools => _poolRanges ??= PoolRanges(_backends);

    /// <inheritdoc />
    void IKvBlockTransfer.CopyOut(int block, Span<byte> destination) => PoolOf(block, out var local).ReadBlock(local, destination);

    /// <inheritdoc />
    void IKvBlockTransfer.CopyIn(int block, ReadOnlySpan<byte> source) => PoolOf(block, out var local).WriteBlock(local, source);

    /// <summary>The pools of <paramref name="backends"/>, named by device, with an index where a device holds several.</summary>
    internal static KvPoolRange[] PoolRanges(IReadOnlyList<IAttentionBackend> backends)
    {
        var ranges = new KvPoolRange[backends.Count];
        for (var i = 0; i < ranges.Length; i++)
        {
            var backend = backends[i];
            var same = 0;
            var index = 0;
            for (var j = 0; j < backends.Count; j++)
            {
                if (backends[j].Device == backend.Device)
                {
                    index = j < i ? index + 1 : index;
                    same++;
                }
            }

            var name = same > 1 ? $"{backend.Device}:{index}" : backend.Device;
            ranges[i] = new KvPoolRange(name, backend.FirstBlock, backend.BlockCount);
        }

        return ranges;
    }

    private HostKvPool PoolOf(int block, out int local)
    {
        foreach (var backend in _backends)
        {
            if (block >= backend.FirstBlock && block < backend.FirstBlock + backend.BlockCount)
            {
                local = block - backend.FirstBlock;
                return ((CpuAttentionBackend)backend).Pool;
            }
        }

        throw new ArgumentOutOfRangeException(nameof(block), block, $"Block must be in [0, {BlockCount}).");
    }
}
