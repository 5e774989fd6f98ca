// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Engine.KvCache;

/// <summary>
/// What the KV cache may take, handed to the runner factory (<see cref="ServedModel.CreateRunner"/>) once at startup:
/// <see cref="Memory"/> (bytes, or a fraction of the memory the store lives in) and the block size asked for. The runner
/// that comes back reports what it holds (<see cref="IModelRunner.BlockCount"/>, <see cref="IModelRunner.BlockSize"/>:
/// its kernel may need larger blocks), and everything else (the KV-cache manager, the startup log, <c>/metrics</c>) reads
/// those numbers.
/// </summary>
public readonly record struct KvBudget
{
    private readonly double _memory;
    private readonly int _blockSize;
    private readonly IReadOnlyList<double>? _poolMemory;

    /// <summary>Creates a budget of <paramref name="memory"/> with blocks of <paramref name="blockSize"/> tokens asked for.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range; the message names the command-line flag.</exception>
    public KvBudget(double memory, int blockSize)
    {
        Memory = memory;
        BlockSize = blockSize;
    }

    /// <summary>Bytes when above 1, or a fraction in (0, 1] of the device's free memory (a device store) or of the process's available memory (host pages).</summary>
    public double Memory
    {
        get => _memory;
        init => _memory = OptionChecks.KvCacheMemory(value);
    }

    /// <summary>
    /// One size per attention device of a split model, in <c>--attention-device</c> order (<c>--kv-cache-memory 20g,64g</c>),
    /// each bytes or a fraction of that device's free memory (host memory for a <c>cpu</c> pool); null (the default) when
    /// <see cref="Memory"/> is split evenly between the devices.
    /// </summary>
    public IReadOnlyList<double>? PoolMemory
    {
        get => _poolMemory;
        init
        {
            if (value is not null)
            {
                ArgumentOutOfRangeException.ThrowIfZero(value.Count, nameof(PoolMemory));
                foreach (var size in value)
                {
                    _ = OptionChecks.KvCacheMemory(size);
                }
            }

            _poolMemory = value is null ? null : [.. value];
        }
    }

    /// <summary>Tokens per block asked for (<c>--block-size</c>); the runner may raise it.</summary>
    public int BlockSize
    {
        get => _blockSize;
        init => _blockSize = OptionChecks.AtLeastOne(value, "block-size");
    }

    /// <summary>
    /// The one KV planner: how many blocks of <paramref name="blockSize"/> tokens (the size the store uses) this budget buys
    /// for a model of <paramref name="spec"/>, given the store's <paramref name="deviceFreeMemory"/> (null: host memory).
    /// </summary>
    /// <exception cref="InvalidOperationException">That is less than one full-context sequence.</exception>
    internal int PlanBlocks(ModelSpec spec, int blockSize, long? deviceFreeMemory)
    {
        var blockBytes = spec.KvBytesPerToken * blockSize;
        var budget = Bytes(Memory, deviceFreeMemory);
        var blocks = (int)Math.Clamp(budget / Math.Max(1, blockBytes), 1, int.MaxValue / blockSize);
        var needed = NeededBlocks(spec, blockSize);
        if (blocks < needed)
        {
            throw new InvalidOperationException(
                $"--kv-cache-memory: {budget} bytes hold {blocks} blocks of {blockSize} tokens, fewer than one full-context sequence needs ({needed} blocks, {needed * blockBytes} bytes); raise it.");
        }

        return blocks;
    }

    /// <summary>
    /// <see cref="PlanBlocks"/> per pool for <see cref="PoolMemory"/>: the blocks each size buys, a fraction of that pool's
    /// <paramref name="freeMemory"/> (null: host memory), together at least one full-context sequence.
    /// </summary>
    /// <exception cref="InvalidOperationException">The sizes are not one per pool, or hold less than one full-context sequence.</exception>
    internal int[] PlanPoolBlocks(ModelSpec spec, int blockSize, IReadOnlyList<long?> freeMemory)
    {
        var pools = PoolMemory ?? throw new InvalidOperationException("No per-pool --kv-cache-memory sizes were given.");
        if (pools.Count != freeMemory.Count)
        {
            throw new InvalidOperationException(
                $"--kv-cache-memory {Describe(pools)}: {pools.Count} sizes for {freeMemory.Count} attention devices; give one per --attention-device, in order, or one size to split evenly.");
        }

        var blockBytes = spec.KvBytesPerToken * blockSize;
        var counts = new int[pools.Count];
        long total = 0;
        for (var i = 0; i < pools.Count; i++)
        {
            counts[i] = (int)Math.Clamp(Bytes(pools[i], freeMemory[i]) / Math.Max(1, blockBytes), 1, int.MaxValue / blockSize / pools.Count);
            total += counts[i];
        }

        var needed = NeededBlocks(spec, blockSize);
        if (total < needed)
        {
            throw new InvalidOperationException(
                $"--kv-cache-memory {Describe(pools)}: the pools hold {total} blocks of {blockSize} tokens together, fewer than one full-context sequence needs ({needed} blocks, {needed * blockBytes} bytes); raise them.");
        }

        return counts;
    }

    /// <summary>The bytes <paramref name="memory"/> means: itself above 1, else that fraction of <paramref name="freeMemory"/> (null: the process's available memory).</summary>
    private static long Bytes(double memory, long? freeMemory) => memory is > 0 and <= 1
        ? (long)((freeMemory ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes) * memory)
        : (long)memory;

    /// <summary>Blocks of <paramref name="blockSize"/> tokens one full-context sequence of <paramref name="spec"/> takes.</summary>
    private static int NeededBlocks(ModelSpec spec, int blockSize) => (spec.ContextLength + blockSize - 1) / blockSize;

    private static string Describe(IReadOnlyList<double> sizes) =>
        string.Join(',', sizes.Select(static s => s.ToString(System.Globalization.CultureInfo.InvariantCulture)));
}
