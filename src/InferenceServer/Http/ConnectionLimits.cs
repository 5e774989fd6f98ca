// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;

namespace InferenceServer.Http;

/// <summary>
/// How many connections the server keeps open and for how long an idle one lives, so that a flood of idle sockets
/// cannot exhaust the process's file descriptors (which kills the runtime, not only the flood). The limit is
/// <c>--max-connections</c>, or by default the smaller of <see cref="DefaultMaxConnections"/> and 80% of the
/// soft open-file limit (<c>RLIMIT_NOFILE</c>, read from <c>/proc/self/limits</c> at start) less
/// <see cref="DescriptorReserve"/> descriptors for the model, logs and the runtime.
/// </summary>
internal sealed class ConnectionLimits
{
    /// <summary>The largest default connection limit: 4096.</summary>
    public const int DefaultMaxConnections = 4096;

    /// <summary>Descriptors kept back from the connection limit for everything else the process opens: 128.</summary>
    public const int DescriptorReserve = 128;

    /// <summary>The smallest derived default (a tiny descriptor limit still serves a few clients): 16.</summary>
    public const int SmallestDerivedLimit = 16;

    /// <summary>The longest a request's headers may take to arrive, unless the keep-alive timeout is shorter: 30 s (Kestrel's default).</summary>
    public static readonly TimeSpan LongestRequestHeadersTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Default <c>--keep-alive-timeout</c>: 75 s (nginx's <c>keepalive_timeout</c>; longer than its upstream's 60 s, so the proxy closes first).</summary>
    public static readonly TimeSpan DefaultKeepAliveTimeout = TimeSpan.FromSeconds(75);

    /// <summary>The most connections open at once, over every listener (HTTP and gRPC ports together).</summary>
    public required int MaxConnections { get; init; }

    /// <summary>How long an idle connection stays open.</summary>
    public required TimeSpan KeepAliveTimeout { get; init; }

    /// <summary>How long a request's headers may take to arrive: the keep-alive timeout, at most <see cref="LongestRequestHeadersTimeout"/>.</summary>
    public TimeSpan RequestHeadersTimeout => KeepAliveTimeout < LongestRequestHeadersTimeout ? KeepAliveTimeout : LongestRequestHeadersTimeout;

    /// <summary>The soft open-file limit read at start, or null where it could not be read (not Linux).</summary>
    public long? DescriptorLimit { get; init; }

    /// <summary>A warning for stderr when <see cref="MaxConnections"/> leaves too few descriptors for the rest of the process; else null.</summary>
    public string? Warning { get; init; }

    /// <summary>
    /// The limits for <paramref name="configured"/> (<c>--max-connections</c>, null for the default) and
    /// <paramref name="keepAliveTimeout"/>, given the soft descriptor limit <paramref name="descriptorLimit"/> (null: unknown).
    /// </summary>
    public static ConnectionLimits Create(int? configured, TimeSpan keepAliveTimeout, long? descriptorLimit)
    {
        var safe = descriptorLimit is { } limit ? SafeConnections(limit) : DefaultMaxConnections;
        string? warning = null;
        if (configured is { } asked && descriptorLimit is { } soft && asked > safe)
        {
            warning = $"--max-connections {asked} is close to or above the open-file limit of {soft} descriptors (ulimit -n); "
                + $"a connection flood could exhaust it and stop the server: lower it to {safe} or raise the limit.";
        }

        return new ConnectionLimits
        {
            MaxConnections = configured ?? Math.Min(DefaultMaxConnections, safe),
            KeepAliveTimeout = keepAliveTimeout,
            DescriptorLimit = descriptorLimit,
            Warning = warning,
        };
    }

    /// <summary>80% of <paramref name="descriptorLimit"/> less <see cref="DescriptorReserve"/>, at least <see cref="SmallestDerivedLimit"/>.</summary>
    public static int SafeConnections(long descriptorLimit)
        => (int)Math.Clamp((descriptorLimit * 8 / 10) - DescriptorReserve, SmallestDerivedLimit, int.MaxValue);

    /// <summary>Reads the soft <c>Max open files</c> limit from <c>/proc/self/limits</c>; null when absent, unlimited or unreadable.</summary>
    public static long? ReadDescriptorLimit(string path = "/proc/self/limits")
    {
        try
        {
            if (!File.Exists(path))
            {
                return null;
            }

            foreach (var line in File.ReadLines(path))
            {
                if (line.StartsWith("Max open files", StringComparison.Ordinal))
                {
                    // "Max open files            1024                 524288               files"
                    var fields = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return fields.Length > 0 && long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var soft) ? soft : null;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return null;
    }
}
