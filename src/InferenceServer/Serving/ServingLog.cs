// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Serving;

/// <summary>The serving layer's request log, for HTTP and gRPC alike (event ids 2000-2099; draining uses 2100-2199).</summary>
internal static partial class ServingLog
{
    /// <summary>One line per finished completion request; never the prompt or the generated text.</summary>
    [LoggerMessage(
        EventId = 2001,
        EventName = "CompletionFinished",
        Level = LogLevel.Information,
        Message = "Completion {CompletionId} finished: model {Model}, {PromptTokens} prompt + {CompletionTokens} completion tokens, queue {QueueMs} ms, TTFT {TtftMs} ms, total {TotalMs} ms, finish {FinishReason}, status {StatusCode}")]
    public static partial void CompletionFinished(ILogger logger, string completionId, string model, int promptTokens, int completionTokens, double queueMs, double ttftMs, double totalMs, string finishReason, int statusCode);

    /// <summary>
    /// Logs <see cref="CompletionFinished"/> for a finished HTTP or gRPC request from its counts and timings: TTFT -1
    /// when no token came, finish "abort" when no choice finished.
    /// </summary>
    public static void RequestFinished(ILogger logger, string id, string model, UsageCounter usage, TimeSpan total, int statusCode)
    {
        var ttft = usage.TimeToFirstToken is { } first ? first.TotalMilliseconds : -1;
        var reasons = usage.FinishReasons.Length > 0 ? usage.FinishReasons : "abort";
        CompletionFinished(logger, id, model, usage.PromptTokens, usage.CompletionTokens, usage.QueueTime.TotalMilliseconds, ttft, total.TotalMilliseconds, reasons, statusCode);
    }

    /// <summary>The request body's prompt, only with <c>--log-requests</c>.</summary>
    [LoggerMessage(EventId = 2002, EventName = "CompletionPrompt", Level = LogLevel.Information, Message = "Completion {CompletionId} prompt: {Prompt}")]
    public static partial void CompletionPrompt(ILogger logger, string completionId, string prompt);
}
