// Licensed under the MIT License. See LICENSE in the repository root.
using System.Reflection;
using System.Text.Json;
using InferenceServer.Serving;

namespace InferenceServer.Http;

/// <summary>
/// The probes, all read from <see cref="ServingState"/> and never gated (they answer while draining):
/// <list type="bullet">
/// <item><c>GET /health/live</c>: 200 <c>live</c>; 503 with the reason once the engine has had work and made no progress
/// for <c>--liveness-stall-timeout</c> (an orchestrator then restarts the process).</item>
/// <item><c>GET /health/ready</c>: 200 <c>ready</c>; 503 with the reason while draining, stalled past
/// <c>--engine-stall-timeout</c>, stopped or failing its steps.</item>
/// <item><c>GET /health</c>: vLLM's probe: 200 with an empty body while the engine runs, progresses and is healthy; 503
/// otherwise. Draining is not a failure here, as in vLLM.</item>
/// <item><c>GET /version</c>: vLLM's <c>{"version": "..."}</c>, the server's informational version.</item>
/// </list>
/// </summary>
internal static class HealthEndpoints
{
    /// <summary>The server's version: the informational version of the host assembly (with its source revision when built from git).</summary>
    public static string Version { get; } =
        typeof(HealthEndpoints).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(HealthEndpoints).Assembly.GetName().Version?.ToString()
        ?? "0.0.0";

    private static readonly string VersionBody = JsonSerializer.Serialize(new Dictionary<string, string> { ["version"] = Version });

    /// <summary>Maps the four endpoints; the three probes are open under <c>--api-key</c>, <c>/version</c> is not.</summary>
    public static void Map(WebApplication app)
    {
        app.MapGet("/health/live", static (ServingState state) => state.NotLiveReason is { } reason
            ? Results.Text(reason, statusCode: StatusCodes.Status503ServiceUnavailable)
            : Results.Text("live")).AllowAnonymous();
        app.MapGet("/health/ready", static (ServingState state) => state.NotReadyReason is { } reason
            ? Results.Text(reason, statusCode: StatusCodes.Status503ServiceUnavailable)
            : Results.Text("ready")).AllowAnonymous();
        app.MapGet("/health", static (ServingState state) => state.EngineHealthy
            ? Results.Ok()
            : Results.StatusCode(StatusCodes.Status503ServiceUnavailable)).AllowAnonymous();
        app.MapGet("/version", static () => Results.Text(VersionBody, "application/json"));
    }
}
