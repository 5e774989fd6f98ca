// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;

namespace InferenceServer.Engine;

/// <summary>
/// Range checks of the engine's options, each naming the command-line flag the host maps to the value, so that a bad
/// value set in code reads like one given on the command line. Used by the options' init accessors: an options value
/// that exists is valid.
/// </summary>
internal static class OptionChecks
{
    /// <summary><paramref name="value"/> when at least 1; else throws naming <c>--<paramref name="flag"/></c>.</summary>
    public static int AtLeastOne(int value, string flag)
        => value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, $"--{flag} must be at least 1, not {value}.");

    /// <summary><paramref name="value"/> when at least 1; else throws naming <c>--<paramref name="flag"/></c>.</summary>
    public static long AtLeastOne(long value, string flag)
        => value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, $"--{flag} must be at least 1, not {value}.");

    /// <summary><paramref name="value"/> when a positive, finite time; else throws naming <c>--<paramref name="flag"/></c> (seconds).</summary>
    public static TimeSpan Positive(TimeSpan value, string flag)
        => value > TimeSpan.Zero ? value : throw new ArgumentOutOfRangeException(nameof(value), value, $"--{flag} must be a positive number of seconds, not {value.TotalSeconds.ToString(CultureInfo.InvariantCulture)}.");

    /// <summary><paramref name="value"/> when a byte count above 1 or a fraction in (0, 1]; else throws naming <c>--kv-cache-memory</c>.</summary>
    public static double KvCacheMemory(double value)
        => double.IsFinite(value) && value > 0 && value <= long.MaxValue
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, $"--kv-cache-memory must be a byte count or a fraction in (0, 1], not {value.ToString(CultureInfo.InvariantCulture)}.");

    /// <summary><paramref name="value"/> when 0 (off), a byte count above 1 or a fraction in (0, 1]; else throws naming <c>--host-kv-cache-memory</c>.</summary>
    public static double HostKvCacheMemory(double value)
        => double.IsFinite(value) && value >= 0 && value <= long.MaxValue
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, $"--host-kv-cache-memory must be 0 (off), a byte count or a fraction in (0, 1], not {value.ToString(CultureInfo.InvariantCulture)}.");
}
