// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Sampling;

/// <summary>
/// SplitMix64: a small, fast generator whose sequence is fixed by its seed on every platform and runtime version,
/// so that a request's <c>seed</c> reproduces its output across restarts and machines.
/// </summary>
internal struct SeededRandom
{
    private ulong _state;

    /// <summary>Starts the sequence for <paramref name="seed"/>.</summary>
    public SeededRandom(long seed) => _state = unchecked((ulong)seed);

    /// <summary>The next value in [0, 1).</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        unchecked
        {
            var z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}
