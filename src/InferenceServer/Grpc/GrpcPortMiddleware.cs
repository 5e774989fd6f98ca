// Licensed under the MIT License. See LICENSE in the repository root.
using Grpc.AspNetCore.Server;
using Grpc.Core;
using InferenceServer.Serving;

namespace InferenceServer.Grpc;

/// <summary>
/// Keeps the two ports apart, first in the pipeline (routing has chosen the endpoint by then). A call on the gRPC port
/// runs the gRPC pipeline (<see cref="GrpcAuthenticationMiddleware"/>, the serving gate,
/// <see cref="GrpcFrameMiddleware"/>, then the gRPC endpoint) and none of the HTTP API's middleware; anything else on
/// that port is refused: a gRPC request for an unknown method with UNIMPLEMENTED, any other request (the OpenAI API,
/// <c>/health/*</c>, <c>/metrics</c>) with 404. On the HTTP port a gRPC endpoint is refused with UNIMPLEMENTED, so
/// that gRPC is never served without the gRPC port's checks.
/// </summary>
internal sealed class GrpcPortMiddleware(RequestDelegate next, GrpcListener listener, RequestDelegate grpcPipeline)
{
    /// <summary>The body of the 404 for a non-gRPC request on the gRPC port.</summary>
    public const string NotGrpcMessage = "This port serves only gRPC (inference.v1.Inference, grpc.health.v1.Health and server reflection); the OpenAI HTTP API, /health/* and /metrics are on the HTTP port.";

    /// <summary>Routes the request by the port it came in on.</summary>
    public Task InvokeAsync(HttpContext context)
    {
        var isGrpcMethod = context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is not null;
        if (!listener.IsGrpcConnection(context.Connection))
        {
            return isGrpcMethod
                ? GrpcStatusResponse.WriteAsync(context, StatusCode.Unimplemented, "gRPC is served only on the gRPC port (--grpc-port).")
                : next(context);
        }

        if (!isGrpcMethod)
        {
            if (GrpcStatusResponse.IsGrpcRequest(context.Request))
            {
                return GrpcStatusResponse.WriteAsync(context, StatusCode.Unimplemented, $"The method {context.Request.Path} does not exist on this server.");
            }

            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return context.Response.WriteAsync(NotGrpcMessage, context.RequestAborted);
        }

        // The caller's x-request-id (when usable, as on the HTTP API) names the call in logs; Generate may replace it.
        var supplied = context.Request.Headers[GrpcErrors.RequestIdHeader];
        if (supplied.Count == 1 && RequestIds.IsUsable(supplied[0]))
        {
            context.TraceIdentifier = supplied[0]!;
        }

        return grpcPipeline(context);
    }
}
