// Licensed under the MIT License. See LICENSE in the repository root.
using System.Security.Cryptography;
using System.Text;
using InferenceServer.OpenAi;

namespace InferenceServer.Http;

/// <summary>
/// With <c>--api-key</c> set, requests under <c>/v1/</c> must carry <c>Authorization: Bearer &lt;key&gt;</c> with one of
/// the keys (compared in constant time); others get 401 in OpenAI's envelope, as OpenAI and vLLM answer. Probes,
/// <c>/tokenize</c> and <c>/detokenize</c> stay open, as in vLLM.
/// </summary>
internal sealed class ApiKeyMiddleware
{
    private readonly RequestDelegate _next;
    private readonly byte[][] _keys;

    /// <summary>Creates the middleware for <paramref name="keys"/> (at least one).</summary>
    public ApiKeyMiddleware(RequestDelegate next, IReadOnlyList<string> keys)
    {
        _next = next;
        _keys = new byte[keys.Count][];
        for (var i = 0; i < keys.Count; i++)
        {
            _keys[i] = Encoding.UTF8.GetBytes(keys[i]);
        }
    }

    /// <summary>Checks the key on protected paths.</summary>
    public Task InvokeAsync(HttpContext context)
    {
        if (!context.Request.Path.StartsWithSegments("/v1", StringComparison.Ordinal) || HttpMethods.IsOptions(context.Request.Method) || IsAuthorized(context.Request.Headers.Authorization))
        {
            return _next(context);
        }

        context.Response.Headers.WWWAuthenticate = "Bearer";
        return OpenAiErrors.WriteAsync(context, StatusCodes.Status401Unauthorized, "Incorrect or missing API key: send 'Authorization: Bearer <key>' with a key this server was started with (--api-key).", "invalid_request_error", null, "invalid_api_key");
    }

    private bool IsAuthorized(string? header)
    {
        const string Scheme = "Bearer ";
        if (header is null || !header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var presented = Encoding.UTF8.GetBytes(header.AsSpan(Scheme.Length).Trim().ToString());
        var match = false;
        foreach (var key in _keys)
        {
            // Every key is compared, so the time taken says nothing about which one (or how much of one) matched.
            match |= CryptographicOperations.FixedTimeEquals(presented, key);
        }

        return match;
    }
}
