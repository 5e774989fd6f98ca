// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Where the paged CUDA runner's layer pools lie in the one device allocation it makes for them, and how one block of
/// every pool is copied to or from the host tier in as few calls as the layout allows (ADR 0009, 2026-12-08).
/// <para>
/// Each pool (a layer's keys or values, <c>[blocks, block_size, heads, width]</c>) gets <c>blocks x blockBytes</c>,
/// rounded up to <see cref="Alignment"/>; pools of one block size lie together, in pool order; pools of no bytes (a
/// latent layer's missing value pool) take no room. A host slot holds a block's runs pool after pool
/// (<c>IKvBlockTransfer</c>'s layout), so block <c>b</c> of pools of one size whose host runs are evenly spaced is one
/// pitched copy (<c>cudaMemcpy2DAsync</c>): <see cref="Run.Pools"/> rows of <see cref="Run.BlockBytes"/>, one
/// <see cref="Run.Pitch"/> apart on the device and <see cref="Run.HostPitch"/> apart on the host. For a model whose
/// layers are alike that is one call per block instead of one per pool (Llama, Qwen: 32 calls for an 8B model's
/// 8k-token history instead of 2,048), or two where keys and values differ in width (the gather-form MLA layers'
/// latent and rope key). A pitch over the device's limit (<c>cudaDevAttrMaxPitch</c>) leaves each pool a run of its own.
/// </para>
/// </summary>
internal sealed class KvPoolArena
{
    /// <summary>Where each pool starts in the arena: a multiple of this many bytes.</summary>
    public const int Alignment = 256;

    private readonly long[] _offsets;
    private readonly Run[] _runs;

    private KvPoolArena(long[] offsets, Run[] runs, long totalBytes)
    {
        _offsets = offsets;
        _runs = runs;
        TotalBytes = totalBytes;
    }

    /// <summary>The arena's size: every pool, each padded to <see cref="Alignment"/>.</summary>
    public long TotalBytes { get; }

    /// <summary>The copies of one block, in pool order; host offsets follow each other without gaps.</summary>
    public IReadOnlyList<Run> Runs => _runs;

    /// <summary>
    /// Lays out pools whose blocks take <paramref name="poolBlockBytes"/> each (0: no pool), <paramref name="blocks"/> blocks
    /// each, for a device whose copies take pitches up to <paramref name="maxPitch"/> bytes.
    /// </summary>
    public static KvPoolArena Plan(IReadOnlyList<long> poolBlockBytes, int blocks, long maxPitch)
    {
        ArgumentNullException.ThrowIfNull(poolBlockBytes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blocks);

        // Where each pool's run lies in a host slot: pool after pool, in pool order.
        var hostOffsets = new long[poolBlockBytes.Count];
        long host = 0;
        for (var pool = 0; pool < poolBlockBytes.Count; pool++)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(poolBlockBytes[pool]);
            hostOffsets[pool] = host;
            host += poolBlockBytes[pool];
        }

        // On the device, pools of one block size lie together (in pool order), so that a layer's keys and values of
        // different widths (an MLA layer's latent and rope key) still make two runs, not one per pool.
        var offsets = new long[poolBlockBytes.Count];
        Array.Fill(offsets, -1);
        var runs = new List<Run>();
        long total = 0;
        for (var first = 0; first < poolBlockBytes.Count; first++)
        {
            var blockBytes = poolBlockBytes[first];
            if (blockBytes == 0 || offsets[first] >= 0)
            {
                continue;
            }

            var pitch = (checked(blocks * blockBytes) + Alignment - 1) / Alignment * Alignment;
            for (var pool = first; pool < poolBlockBytes.Count; pool++)
            {
                if (poolBlockBytes[pool] != blockBytes)
                {
                    continue;
                }

                offsets[pool] = total;

                // A run goes on while the pools' host runs keep one step apart (the device's are one pitch apart). The step
                // is at least the block bytes, as a pitched copy needs: the host runs of one size never overlap.
                if (runs.Count > 0 && runs[^1] is var last && last.BlockBytes == blockBytes && last.DeviceOffset + (last.Pools * pitch) == total
                    && pitch <= maxPitch && (last.Pools == 1 || last.HostOffset + (last.Pools * last.HostPitch) == hostOffsets[pool]))
                {
                    runs[^1] = last with { Pools = last.Pools + 1, HostPitch = last.Pools == 1 ? hostOffsets[pool] - last.HostOffset : last.HostPitch };
                }
                else
                {
                    runs.Add(new Run(pool, 1, blockBytes, pitch, total, hostOffsets[pool], blockBytes));
                }

                total = checked(total + pitch);
            }
        }

        return new KvPoolArena(offsets, [.. runs], total);
    }

    /// <summary>Where pool <paramref name="pool"/> starts in the arena; -1 for a pool of no bytes.</summary>
    public long Offset(int pool) => _offsets[pool];

    /// <summary>
    /// <paramref name="Pools"/> pools of one block size that take one pitched copy per block, the first of them
    /// <paramref name="FirstPool"/>: row r is the r-th pool of that size from it, in pool order.
    /// </summary>
    /// <param name="FirstPool">The first pool's index (2 x layer for keys, + 1 for values).</param>
    /// <param name="Pools">How many pools the run covers.</param>
    /// <param name="BlockBytes">One block of one of them: the row width.</param>
    /// <param name="Pitch">From one pool's start to the next's in the arena.</param>
    /// <param name="DeviceOffset">The first pool's start in the arena.</param>
    /// <param name="HostOffset">Where the run's first row starts in a host slot.</param>
    /// <param name="HostPitch">From one row to the next in a host slot (the block bytes of the pools between them).</param>
    internal readonly record struct Run(int FirstPool, int Pools, long BlockBytes, long Pitch, long DeviceOffset, long HostOffset, long HostPitch);
}
