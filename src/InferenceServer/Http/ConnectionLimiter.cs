// Licensed under the MIT License. See LICENSE in the repository root.
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace InferenceServer.Http;

/// <summary>
/// Counts open connections over every listener together (Kestrel's own <c>MaxConcurrentConnections</c> counts each
/// bound socket apart, and <c>localhost</c> alone binds two) and closes a connection at once when
/// <see cref="ConnectionLimits.MaxConnections"/> are already open, so that its descriptor is freed before any work is
/// done for it. Refusals are logged at most once per <see cref="LogInterval"/>, with the count since the last line.
/// </summary>
internal sealed class ConnectionLimiter
{
    /// <summary>The shortest interval between two "connection refused" log lines: 10 s.</summary>
    public static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(10);

    private readonly int _limit;
    private readonly TimeProvider _time;
    private ILogger? _logger;
    private long _open;
    private long _refused;
    private long _refusedSinceLog;
    private long _lastLog = long.MinValue;

    /// <summary>Creates the limiter for <paramref name="limit"/> connections.</summary>
    public ConnectionLimiter(int limit, TimeProvider time)
    {
        _limit = limit;
        _time = time;
    }

    /// <summary>Connections open now.</summary>
    public long Open => Interlocked.Read(ref _open);

    /// <summary>Connections closed on arrival because the limit was reached, since start.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Wraps the connection pipeline of <paramref name="listen"/>, whose application services give the logger.</summary>
    public Func<ConnectionDelegate, ConnectionDelegate> Middleware(ListenOptions listen)
        => next => connection => OnConnectionAsync(connection, next, listen);

    private async Task OnConnectionAsync(ConnectionContext connection, ConnectionDelegate next, ListenOptions listen)
    {
        if (Interlocked.Increment(ref _open) > _limit)
        {
            Interlocked.Decrement(ref _open);
            Interlocked.Increment(ref _refused);
            NoteRefused(listen);

            // Returning closes the connection; Kestrel disposes its socket.
            return;
        }

        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _open);
        }
    }

    private void NoteRefused(ListenOptions listen)
    {
        Interlocked.Increment(ref _refusedSinceLog);
        var now = _time.GetTimestamp();
        var last = Interlocked.Read(ref _lastLog);
        if (last != long.MinValue && _time.GetElapsedTime(last, now) < LogInterval)
        {
            return;
        }

        if (Interlocked.CompareExchange(ref _lastLog, now, last) != last)
        {
            return;
        }

        _logger ??= listen.ApplicationServices.GetService<ILoggerFactory>()?.CreateLogger<ConnectionLimiter>();
        if (_logger is { } logger)
        {
            HttpLog.ConnectionsRefused(logger, Interlocked.Exchange(ref _refusedSinceLog, 0), _limit);
        }
    }
}
