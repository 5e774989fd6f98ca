// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Grpc;

/// <summary>Log messages of the gRPC API (event ids 3000-3099).</summary>
internal static partial class GrpcLog
{
    [LoggerMessage(EventId = 3000, EventName = "GrpcQueueFull", Level = LogLevel.Warning, Message = "gRPC request {RequestId} refused: the request queue is full.")]
    public static partial void QueueFull(ILogger logger, string requestId);

    [LoggerMessage(EventId = 3001, EventName = "GrpcSlowClientAborted", Level = LogLevel.Warning, Message = "gRPC request {RequestId} aborted: its client let more than {MaxBufferedChunks} chunks pile up.")]
    public static partial void SlowClientAborted(ILogger logger, string requestId, int maxBufferedChunks);

    [LoggerMessage(EventId = 3002, EventName = "GrpcAborted", Level = LogLevel.Information, Message = "gRPC request {RequestId} aborted by an Abort call.")]
    public static partial void Aborted(ILogger logger, string requestId);

    [LoggerMessage(EventId = 3003, EventName = "GrpcListening", Level = LogLevel.Information, Message = "gRPC API listening on {Address}.")]
    public static partial void Listening(ILogger logger, Uri address);

    [LoggerMessage(EventId = 3004, EventName = "GrpcUnauthenticated", Level = LogLevel.Debug, Message = "gRPC call {Path} from {RemoteAddress} refused: no valid API key.")]
    public static partial void Unauthenticated(ILogger logger, string path, string remoteAddress);
}
