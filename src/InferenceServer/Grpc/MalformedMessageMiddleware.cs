// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers.Binary;
using Google.Protobuf;
using InferenceServer.Grpc.V1;

namespace InferenceServer.Grpc;

/// <summary>
/// Answers a <c>Generate</c> call whose request message cannot be parsed (truncated, wrong wire types, strings that are
/// not UTF-8) with INVALID_ARGUMENT naming the problem. grpc-dotnet parses the request before any service code or
/// interceptor runs and answers such a message with UNKNOWN ("Exception was thrown by handler"), which blames the
/// server for the client's bytes. The body is buffered, checked and rewound; compressed messages pass through unchecked.
/// </summary>
internal sealed class MalformedMessageMiddleware(RequestDelegate next)
{
    /// <summary>The method whose requests are checked.</summary>
    public const string GeneratePath = "/inference.v1.Inference/Generate";

    /// <summary>The largest message checked (gRPC's default receive limit); larger ones are left to gRPC's own limit.</summary>
    private const int MaxChecked = 4 * 1024 * 1024;

    /// <summary>Checks the request, then runs the rest of the pipeline.</summary>
    public async Task InvokeAsync(HttpContext context)
    {
        context.Request.EnableBuffering();
        var problem = await FindProblemAsync(context.Request.Body, context.RequestAborted).ConfigureAwait(false);
        context.Request.Body.Position = 0;
        if (problem is null)
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        // A trailers-only response: the status travels in the headers.
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/grpc";
        context.Response.Headers["grpc-status"] = "3";
        context.Response.Headers["grpc-message"] = Uri.EscapeDataString("The request is not a valid inference.v1.GenerateRequest message: " + problem);
    }

    private static async Task<string?> FindProblemAsync(Stream body, CancellationToken cancellationToken)
    {
        var header = new byte[5];
        var read = await body.ReadAtLeastAsync(header, header.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        if (read == 0)
        {
            return null;
        }

        if (read < header.Length)
        {
            return "the message frame is truncated.";
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(1));
        if (header[0] != 0 || length > MaxChecked)
        {
            return null;
        }

        var message = new byte[length];
        read = await body.ReadAtLeastAsync(message, message.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        if (read < message.Length)
        {
            return $"the frame announces {length} bytes but carries {read}.";
        }

        try
        {
            _ = GenerateRequest.Parser.ParseFrom(message);
            return null;
        }
        catch (InvalidProtocolBufferException ex)
        {
            return ex.Message;
        }
    }
}
