// Licensed under the MIT License. See LICENSE in the repository root.
using Grpc.Core;

namespace InferenceServer.Grpc;

/// <summary>The gRPC statuses the API answers with, each with a message a person can act on.</summary>
internal static class GrpcErrors
{
    /// <summary>The trailer naming the offending field of an INVALID_ARGUMENT (e.g. <c>sampling.temperature</c>).</summary>
    public const string InvalidFieldTrailer = "invalid-field";

    /// <summary>The response header carrying a Generate call's request id.</summary>
    public const string RequestIdHeader = "x-request-id";

    /// <summary>INVALID_ARGUMENT for <paramref name="field"/>: the message starts with the field's path, and the trailer names it.</summary>
    public static RpcException InvalidArgument(string field, string message)
        => new(new Status(StatusCode.InvalidArgument, $"{field}: {message}"), new Metadata { { InvalidFieldTrailer, field } });

    /// <summary>NOT_FOUND for a model id other than the served one.</summary>
    public static RpcException ModelNotFound(string requested, string served)
        => new(new Status(StatusCode.NotFound, $"The model '{requested}' does not exist; this server serves '{served}' (or leave 'model' empty)."));

    /// <summary>RESOURCE_EXHAUSTED for a full request queue.</summary>
    public static RpcException QueueFull()
        => new(new Status(StatusCode.ResourceExhausted, "The server's request queue is full; retry shortly with backoff."));

    /// <summary>UNAVAILABLE while draining or shutting down.</summary>
    public static RpcException Unavailable(string message) => new(new Status(StatusCode.Unavailable, message));

    /// <summary>INTERNAL for an engine fault.</summary>
    public static RpcException Internal(string? detail)
        => new(new Status(StatusCode.Internal, $"The engine failed while running the request: {detail ?? "no detail"}. Retry; if it persists, check the server log."));

    /// <summary>FAILED_PRECONDITION for tokenizer calls on a token-only model.</summary>
    public static RpcException NoTokenizer(string model)
        => new(new Status(StatusCode.FailedPrecondition, $"The model '{model}' has no tokenizer (its folder has no tokenizer.json); it takes and returns token ids only."));
}
