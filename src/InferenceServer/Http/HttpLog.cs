// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Http;

/// <summary>The HTTP layer's log (event ids 2200-2299).</summary>
internal static partial class HttpLog
{
    /// <summary>Connections were closed on arrival because <c>--max-connections</c> were open.</summary>
    [LoggerMessage(EventId = 2201, EventName = "ConnectionsRefused", Level = LogLevel.Warning, Message = "Closed {Count} new connections on arrival: {Limit} connections are open (--max-connections).")]
    public static partial void ConnectionsRefused(ILogger logger, long count, int limit);
}
