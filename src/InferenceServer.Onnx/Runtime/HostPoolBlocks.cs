// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Block copies over CPU attention backends (ADR 0009), shared by the split runners: a global block lives in the one
/// backend whose range holds it, and is one contiguous run of its <see cref="HostKvPool"/>.
/// </summary>
internal static class HostPoolBlocks
{
    /// <summary>Bytes of one block (all backends hold the same layers and storage), or 0 when there is no CPU backend.</summary>
    public static int BlockBytes(IReadOnlyList<IAttentionBackend> backends)
        => backends.Count > 0 && backends[0] is CpuAttentionBackend cpu ? checked((int)cpu.Pool.BytesPerBlock) : 0;

    /// <summary>The pools of <paramref name="backends"/>, named by device, with an index where a device holds several.</summary>
    public static KvPoolRange[] Ranges(IReadOnlyList<IAttentionBackend> backends)
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

    /// <summary>The pages holding global block <paramref name="block"/>, and its id there.</summary>
    /// <exception cref="ArgumentOutOfRangeException">No backend holds it.</exception>
    /// <exception cref="NotSupportedException">The backend that holds it is not a CPU one.</exception>
    public static HostKvPool PoolOf(IReadOnlyList<IAttentionBackend> backends, int block, out int local)
    {
        foreach (var backend in backends)
        {
            if (block >= backend.FirstBlock && block < backend.FirstBlock + backend.BlockCount)
            {
                local = block - backend.FirstBlock;
                return backend is CpuAttentionBackend cpu
                    ? cpu.Pool
                    : throw new NotSupportedException($"KV blocks on {backend.Device} cannot be copied to the host tier yet.");
            }
        }

        throw new ArgumentOutOfRangeException(nameof(block), block, "No KV pool holds this block.");
    }
}
