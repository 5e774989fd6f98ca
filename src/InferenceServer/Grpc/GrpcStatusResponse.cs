// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using Grpc.Core;

namespace InferenceServer.Grpc;

/// <summary>
/// Ends a gRPC call before its handler runs with a trailers-only response: HTTP 200, <c>content-type: application/grpc</c>
/// and the status in the headers, which every gRPC client reads as the call's status.
/// </summary>
internal static class GrpcStatusResponse
{
    /// <summary>The header of a call's status code.</summary>
    public const string StatusHeader = "grpc-status";

    /// <summary>The header of a call's status message (percent-encoded).</summary>
    public const string MessageHeader = "grpc-message";

    /// <summary>Answers <paramref name="context"/> with <paramref name="code"/> and <paramref name="message"/>; nothing else is written.</summary>
    public static Task WriteAsync(HttpContext context, StatusCode code, string message)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/grpc";
        response.Headers[StatusHeader] = ((int)code).ToString(CultureInfo.InvariantCulture);
        response.Headers[MessageHeader] = Uri.EscapeDataString(message);
        return Task.CompletedTask;
    }

    /// <summary>True when the request says it is gRPC (<c>content-type: application/grpc</c> or a <c>+proto</c>/<c>+json</c> form).</summary>
    public static bool IsGrpcRequest(HttpRequest request)
        => request.ContentType is { } type && type.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase);
}
