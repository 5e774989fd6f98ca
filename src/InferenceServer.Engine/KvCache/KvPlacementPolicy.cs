// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Text;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Engine.KvCache;

/// <summary>
/// Which KV pool gets a sequence's next block (issue 17 item 1, ADR 0009). Each pool has a capacity and a measured
/// attention time per block it holds (<see cref="KvPoolInput.SecondsPerBlock"/>; 0 when not measured yet). When pools
/// attend in parallel, a step's attention time is the slowest pool's, <c>used x seconds per block</c>; when they attend
/// one after another (today's split runners), it is the sum over pools. The compute-local pool (the first) gets the block
/// while it has room and placing it there keeps the step as fast as placing it anywhere else; otherwise the pool whose
/// step time after taking it is least (the lower index on a tie). An unmeasured pool costs nothing in the parallel model;
/// in the sequential one it is passed over while a measured pool has room (it is measured once blocks reach it, when the
/// pools before it are full). With no measurements every pool costs the same and pools fill in order, compute-local
/// first. With one pool it always answers that pool while it has room. Pure: it holds no state but its inputs.
/// </summary>
internal sealed class KvPlacementPolicy
{
    private readonly KvPoolInput[] _pools;

    /// <summary>Creates the policy over <paramref name="pools"/>, the compute-local pool first, which attend in parallel or (<paramref name="parallel"/> false) one after another.</summary>
    public KvPlacementPolicy(IReadOnlyList<KvPoolInput> pools, bool parallel = true)
    {
        Parallel = parallel;
        ArgumentNullException.ThrowIfNull(pools);
        ArgumentOutOfRangeException.ThrowIfZero(pools.Count, nameof(pools));
        _pools = [.. pools];
        foreach (var pool in _pools)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(pool.Capacity, nameof(pools));
            if (!double.IsFinite(pool.SecondsPerBlock) || pool.SecondsPerBlock < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(pools), pool.SecondsPerBlock, $"Pool {pool.Name}: seconds per block must be finite and not negative.");
            }
        }
    }

    /// <summary>The pools, compute-local first.</summary>
    public IReadOnlyList<KvPoolInput> Pools => _pools;

    /// <summary>Whether the pools attend at the same time (a step costs the slowest pool's time) or one after another (the sum).</summary>
    public bool Parallel { get; }

    /// <summary>A policy over a runner's pools, the first one compute-local, none measured yet.</summary>
    public static KvPlacementPolicy FromPools(IReadOnlyList<KvPoolRange> pools, bool parallel = true)
    {
        var inputs = new KvPoolInput[pools.Count];
        for (var i = 0; i < inputs.Length; i++)
        {
            inputs[i] = new KvPoolInput(pools[i].Name, pools[i].BlockCount, 0);
        }

        return new KvPlacementPolicy(inputs, parallel);
    }

    /// <summary>
    /// The pool for the next block given each pool's blocks in use (<paramref name="used"/>, one per pool), or -1 when
    /// every pool is full.
    /// </summary>
    public int Choose(ReadOnlySpan<int> used)
    {
        if (used.Length != _pools.Length)
        {
            throw new ArgumentException($"{used.Length} usage counts for {_pools.Length} pools.", nameof(used));
        }

        var best = -1;
        var bestTime = double.PositiveInfinity;
        var measuredRoom = false;
        if (!Parallel)
        {
            for (var i = 0; i < _pools.Length; i++)
            {
                measuredRoom |= used[i] < _pools[i].Capacity && _pools[i].SecondsPerBlock > 0;
            }
        }

        for (var i = 0; i < _pools.Length; i++)
        {
            if (used[i] >= _pools[i].Capacity || (measuredRoom && _pools[i].SecondsPerBlock <= 0))
            {
                continue;
            }

            var time = StepTimeWith(used, i);
            if (time < bestTime)
            {
                best = i;
                bestTime = time;
            }
        }

        return best;
    }

    /// <summary>The inputs as one line, for the debug log: each pool's name, capacity and seconds per block.</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        foreach (var pool in _pools)
        {
            if (text.Length > 0)
            {
                text.Append(", ");
            }

            text.Append(CultureInfo.InvariantCulture, $"{pool.Name}: {pool.Capacity} blocks, {(pool.SecondsPerBlock > 0 ? pool.SecondsPerBlock.ToString("G3", CultureInfo.InvariantCulture) + " s/block" : "not measured")}");
        }

        return text.ToString();
    }

    /// <summary>The step's attention time (the slowest pool's, or the sum) with one more block in pool <paramref name="pool"/>.</summary>
    private double StepTimeWith(ReadOnlySpan<int> used, int pool)
    {
        var total = 0.0;
        for (var i = 0; i < _pools.Length; i++)
        {
            var time = (used[i] + (i == pool ? 1 : 0)) * _pools[i].SecondsPerBlock;
            total = Parallel ? Math.Max(total, time) : total + time;
        }

        return total;
    }
}
