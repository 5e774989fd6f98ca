// Licensed under the MIT License. See LICENSE in the repository root.
using Grpc.AspNetCore.Server;
using InferenceServer.OpenAi;
using InferenceServer.Serving;
using Microsoft.AspNetCore.Authorization;

namespace InferenceServer.Http;

/// <summary>
/// With <c>--api-key</c> set, every request must carry <c>Authorization: Bearer &lt;key&gt;</c> with one of the keys
/// (checked by <see cref="ApiKeyVerifier"/>); others get 401 in OpenAI's envelope, as OpenAI and vLLM answer.
/// Deny by default: the decision is made on the endpoint routing matched, not on the path's spelling, so
/// <c>/V1/models</c>, <c>/%761/models</c> or <c>/v1//models</c> need the key exactly as <c>/v1/models</c> does, and so do
/// unmatched paths (the 404 fallback). Open are only endpoints marked <see cref="IAllowAnonymous"/> (the health probes,
/// and <c>/metrics</c> unless <c>--metrics-require-key</c>), and gRPC methods, which check the same keys in their
/// <c>authorization</c> metadata themselves so that a refusal is a gRPC status rather than an HTTP one.
/// </summary>
internal sealed class ApiKeyMiddleware
{
    private readonly RequestDelegate _next;
    private readonly ApiKeyVerifier _verifier;

    /// <summary>Creates the middleware over the server's <paramref name="verifier"/>.</summary>
    public ApiKeyMiddleware(RequestDelegate next, ApiKeyVerifier verifier)
    {
        _next = next;
        _verifier = verifier;
    }

    /// <summary>Passes open endpoints and authorized requests; answers 401 to the rest.</summary>
    public Task InvokeAsync(HttpContext context)
    {
        if (!_verifier.IsEnabled || IsOpen(context.GetEndpoint()) || _verifier.IsAuthorized(context.Request.Headers.Authorization.ToString()))
        {
            return _next(context);
        }

        context.Response.Headers.WWWAuthenticate = "Bearer";
        return OpenAiErrors.WriteAsync(context, StatusCodes.Status401Unauthorized, "Incorrect or missing API key: send 'Authorization: Bearer <key>' with a key this server was started with (--api-key).", "invalid_request_error", null, "invalid_api_key");
    }

    /// <summary>True for an endpoint that needs no key here: marked <see cref="IAllowAnonymous"/>, or a gRPC method.</summary>
    internal static bool IsOpen(Endpoint? endpoint)
        => endpoint is not null
            && (endpoint.Metadata.GetMetadata<IAllowAnonymous>() is not null || endpoint.Metadata.GetMetadata<GrpcMethodMetadata>() is not null);
}
