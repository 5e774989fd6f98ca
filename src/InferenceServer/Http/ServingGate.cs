// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.OpenAi;
using InferenceServer.Serving;

namespace InferenceServer.Http;

/// <summary>
/// The middleware in front of the API (after <see cref="RequestIdMiddleware"/>, which gives each request its id):
/// admits API requests (HTTP and gRPC) only while the replica is ready: otherwise a 503 in OpenAI's envelope with <c>Retry-After</c>, which a balancer
/// retries on another replica. Probes, <c>/metrics</c>, <c>/version</c> and gRPC health always pass. Admitted requests are counted so
/// draining can wait for them.
/// </summary>
internal sealed class ServingGate(RequestDelegate next, ServingState state)
{
    /// <summary>Handles one request.</summary>
    public async Task InvokeAsync(HttpContext context)
    {
        if (IsOperationsPath(context.Request.Path))
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        if (!state.TryEnter())
        {
            if (IsGrpc(context.Request))
            {
                // gRPC clients drop the body and message of a non-200 response; the service itself answers UNAVAILABLE
                // with the reason (draining, engine stopped), which clients retry on another replica.
                await next(context).ConfigureAwait(false);
                return;
            }

            context.Response.Headers.RetryAfter = "1";
            var reason = state.NotReadyReason ?? "not ready";
            await OpenAiErrors.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, $"This replica is not accepting requests ({reason}); retry on another.", "server_error", null, "not_ready").ConfigureAwait(false);
            return;
        }

        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            state.Exit();
        }
    }

    /// <summary>
    /// Probes, <c>/metrics</c> and the gRPC health service always pass. Everything else is gated: the OpenAI API and
    /// gRPC calls alike (a gRPC client reads HTTP 503 as <c>UNAVAILABLE</c>, and nginx's <c>grpc_next_upstream
    /// http_503</c> retries it on another replica).
    /// </summary>
    private static bool IsGrpc(HttpRequest request)
        => request.ContentType is { } type && type.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase);

    private static bool IsOperationsPath(PathString path)
        => path.StartsWithSegments("/health", StringComparison.Ordinal)
            || path.StartsWithSegments("/metrics", StringComparison.Ordinal)
            || path.StartsWithSegments("/version", StringComparison.Ordinal)
            || path.StartsWithSegments("/grpc.health.v1.Health", StringComparison.Ordinal);
}
