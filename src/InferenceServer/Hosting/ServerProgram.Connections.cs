// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Http;

namespace InferenceServer.Hosting;

/// <summary>The connection limits: <c>--max-connections</c> over all listeners, idle and header timeouts.</summary>
internal static partial class ServerProgram
{
    /// <summary>
    /// Sets the connection limit (shared by every listener through <see cref="ConnectionLimiter"/>), the keep-alive and request-headers timeouts, and warns (through the startup log, JSON with --log-format json) when
    /// the limit is close to the descriptor limit. Runs before any endpoint is configured: endpoint defaults apply only
    /// to endpoints created after them.
    /// </summary>
    private static void ConfigureConnections(WebApplicationBuilder builder, ServerOptions options, StartupLog log)
    {
        var limits = ConnectionLimits.Create(options.MaxConnections, options.KeepAliveTimeout, ConnectionLimits.ReadDescriptorLimit());
        if (limits.Warning is { } warning)
        {
            log.Warning(warning);
        }

        var limiter = new ConnectionLimiter(limits.MaxConnections, TimeProvider.System);
        builder.Services.AddSingleton(limits);
        builder.Services.AddSingleton(limiter);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            // Kestrel's own MaxConcurrentConnections stays unset: it counts each bound socket apart (so the HTTP and gRPC
            // ports, each bound twice for localhost, would allow four times the limit) and logs a warning for every
            // refused connection, 20,000 lines for a flood of 20,000. ConnectionLimiter counts them all together and
            // logs one line per interval. Upgraded connections (none today) are counted by Kestrel, within that total.
            kestrel.Limits.MaxConcurrentUpgradedConnections = limits.MaxConnections;
            kestrel.Limits.KeepAliveTimeout = limits.KeepAliveTimeout;
            kestrel.Limits.RequestHeadersTimeout = limits.RequestHeadersTimeout;
            kestrel.ConfigureEndpointDefaults(listen => listen.Use(limiter.Middleware(listen)));
        });
    }
}
