// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Serving;

namespace InferenceServer.Http;

/// <summary>
/// Gives every request an id: the caller's <c>X-Request-Id</c> when it is a usable token (1 to 128 visible ASCII
/// characters, <see cref="RequestIds"/>), else a fresh one. The id is echoed in the response's <c>X-Request-Id</c> header and becomes
/// <see cref="HttpContext.TraceIdentifier"/>, which the endpoints use as the engine's request id and logs carry.
/// </summary>
internal sealed class RequestIdMiddleware
{
    /// <summary>The header's name.</summary>
    public const string HeaderName = "X-Request-Id";

    private readonly RequestDelegate _next;

    /// <summary>Creates the middleware.</summary>
    public RequestIdMiddleware(RequestDelegate next) => _next = next;

    /// <summary>Assigns the id and passes the request on.</summary>
    public Task InvokeAsync(HttpContext context)
    {
        var supplied = context.Request.Headers[HeaderName];
        var id = supplied.Count == 1 && RequestIds.IsUsable(supplied[0]) ? supplied[0]! : Guid.NewGuid().ToString("N");
        context.TraceIdentifier = id;
        context.Response.Headers[HeaderName] = id;
        return _next(context);
    }
}
