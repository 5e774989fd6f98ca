// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using InferenceServer.Serving;

namespace InferenceServer.Grpc;

/// <summary>
/// On the gRPC port, with <c>--api-key</c>: every call must carry <c>authorization: Bearer &lt;key&gt;</c> with one of the
/// keys, else it ends with UNAUTHENTICATED before its message is read. <c>grpc.health.v1.Health</c> and server
/// reflection stay open (probes and tools). Which service is called is read from the endpoint routing chose, not from
/// the path's spelling, so a path in other letter case cannot pass as an open one. Sets the call's <see cref="GrpcCaller"/>.
/// </summary>
internal sealed class GrpcAuthenticationMiddleware
{
    private readonly RequestDelegate _next;
    private readonly ApiKeyVerifier _keys;
    private readonly ILogger _logger;
    private readonly GrpcCaller[] _keyCallers;

    /// <summary>Creates the middleware for <paramref name="keys"/> (none: authentication off).</summary>
    public GrpcAuthenticationMiddleware(RequestDelegate next, ApiKeyVerifier keys, ILogger logger)
    {
        _next = next;
        _keys = keys;
        _logger = logger;
        _keyCallers = new GrpcCaller[keys.Count];
        for (var i = 0; i < keys.Count; i++)
        {
            var scope = "key:" + i.ToString(CultureInfo.InvariantCulture);
            _keyCallers[i] = new GrpcCaller(scope, scope);
        }
    }

    /// <summary>Services that answer without a key.</summary>
    internal static bool IsOpen(string serviceName)
        => serviceName is "grpc.health.v1.Health" or "grpc.reflection.v1alpha.ServerReflection" or "grpc.reflection.v1.ServerReflection";

    /// <summary>Authenticates the call (when keys are set) and passes it on.</summary>
    public Task InvokeAsync(HttpContext context)
    {
        if (_keys.Count == 0)
        {
            context.Features.Set(new GrpcCaller("connection:" + context.Connection.Id, string.Empty));
            return _next(context);
        }

        var method = context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method;
        if (method is not null && IsOpen(method.ServiceName))
        {
            context.Features.Set(GrpcCaller.Anonymous);
            return _next(context);
        }

        var index = _keys.Match(context.Request.Headers.Authorization);
        if (index < 0)
        {
            GrpcLog.Unauthenticated(_logger, context.Request.Path.Value ?? string.Empty, context.Connection.RemoteIpAddress?.ToString() ?? "unknown");
            return GrpcStatusResponse.WriteAsync(context, StatusCode.Unauthenticated, "Missing or incorrect API key: send the metadata 'authorization: Bearer <key>' with a key this server was started with (--api-key).");
        }

        context.Features.Set(_keyCallers[index]);
        return _next(context);
    }
}
