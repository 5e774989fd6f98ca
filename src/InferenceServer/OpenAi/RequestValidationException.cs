// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.OpenAi;

/// <summary>An invalid request, answered with 400 in OpenAI's error envelope naming <see cref="Param"/>.</summary>
internal sealed class RequestValidationException : Exception
{
    /// <summary>Creates the exception for parameter <paramref name="param"/>.</summary>
    public RequestValidationException(string? param, string message, int statusCode = StatusCodes.Status400BadRequest, string type = "invalid_request_error", string? code = null)
        : base(message)
    {
        Param = param;
        StatusCode = statusCode;
        Type = type;
        Code = code;
    }

    /// <summary>The offending parameter, or null for the body as a whole.</summary>
    public string? Param { get; }

    /// <summary>HTTP status to answer with.</summary>
    public int StatusCode { get; }

    /// <summary>OpenAI error type.</summary>
    public string Type { get; }

    /// <summary>OpenAI error code, if any.</summary>
    public string? Code { get; }
}
