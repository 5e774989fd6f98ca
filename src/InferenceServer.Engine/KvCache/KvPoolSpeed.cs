// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;

namespace InferenceServer.Engine.KvCache;

/// <summary>
/// Measures each KV pool's attention time per block it holds (issue 17 item 1), for <see cref="KvPlacementPolicy"/>:
/// after every model call the split runner's attention ticks per memory device (one per pool, in pool order) and the
/// blocks each pool holds are summed; every <see cref="Window"/> steps each pool that held blocks gets seconds per block
/// = its attention seconds / its block-steps, blended with the last estimate. A pool with no blocks in the window keeps
/// its estimate (0: not measured). Not thread-safe: the scheduler's step is its only caller.
/// </summary>
internal sealed class KvPoolSpeed
{
    /// <summary>Steps between two estimates.</summary>
    public const int Window = 32;

    /// <summary>A new estimate replaces the policy's when it moved by more than this fraction (or a pool got its first).</summary>
    public const double ChangeToApply = 0.1;

    private readonly string[] _names;
    private readonly int[] _capacities;
    private readonly long[] _ticks;
    private readonly long[] _blockSteps;
    private readonly double[] _estimate;
    private readonly double[] _applied;
    private int _steps;

    /// <summary>Measures the pools named <paramref name="names"/> of <paramref name="capacities"/> blocks.</summary>
    public KvPoolSpeed(IReadOnlyList<string> names, IReadOnlyList<int> capacities)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(capacities.Count, names.Count, nameof(capacities));
        _names = [.. names];
        _capacities = [.. capacities];
        _ticks = new long[names.Count];
        _blockSteps = new long[names.Count];
        _estimate = new double[names.Count];
        _applied = new double[names.Count];
    }

    /// <summary>The current estimate of pool <paramref name="pool"/>'s attention seconds per block and step (0: not measured).</summary>
    public double SecondsPerBlock(int pool) => _estimate[pool];

    /// <summary>Adds one model call's attention ticks per pool (<paramref name="ticks"/>) with the blocks each pool holds (<paramref name="used"/>).</summary>
    public void Record(ReadOnlySpan<long> ticks, ReadOnlySpan<int> used)
    {
        if (ticks.Length != _ticks.Length || used.Length != _ticks.Length)
        {
            return;
        }

        for (var i = 0; i < _ticks.Length; i++)
        {
            if (used[i] > 0 && ticks[i] > 0)
            {
                _ticks[i] += ticks[i];
                _blockSteps[i] += used[i];
            }
        }
    }

    /// <summary>
    /// Ends a step; at the end of a window updates the estimates and returns the placement inputs when they moved enough
    /// to apply (else null).
    /// </summary>
    public KvPoolInput[]? EndStep()
    {
        if (++_steps < Window)
        {
            return null;
        }

        _steps = 0;
        var changed = false;
        for (var i = 0; i < _ticks.Length; i++)
        {
            if (_blockSteps[i] > 0)
            {
                var measured = (double)_ticks[i] / Stopwatch.Frequency / _blockSteps[i];
                _estimate[i] = _estimate[i] > 0 ? (0.5 * _estimate[i]) + (0.5 * measured) : measured;
            }

            _ticks[i] = 0;
            _blockSteps[i] = 0;
            changed |= _estimate[i] > 0 && (_applied[i] <= 0 || Math.Abs(_estimate[i] - _applied[i]) > ChangeToApply * _applied[i]);
        }

        if (!changed)
        {
            return null;
        }

        var inputs = new KvPoolInput[_ticks.Length];
        for (var i = 0; i < inputs.Length; i++)
        {
            _applied[i] = _estimate[i];
            inputs[i] = new KvPoolInput(_names[i], _capacities[i], _estimate[i]);
        }

        return inputs;
    }
}
