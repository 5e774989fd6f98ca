// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers;
using System.Globalization;
using System.Threading.Channels;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Serving;

namespace InferenceServer.OpenAi;

/// <summary>
/// What the completion endpoints share: submits one sequence per prompt and choice to the scheduler (429 when its queue
/// is full), then answers with one JSON body or a stream of Server-Sent Events ending as the writer ends it (<c>data: [DONE]</c> for
/// the completion endpoints), in the shape an <see cref="IResponseWriter"/> writes. Whatever happens to the response, nothing keeps generating for it.
/// </summary>
internal static class GenerationRunner
{
    /// <summary>The header that shortens a request's deadline, in seconds (as vLLM users send it).</summary>
    public const string TimeoutHeader = "X-Request-Timeout";

    /// <summary>
    /// Admission before any work on the body: answers 503 when the engine refuses work (stopping, or unhealthy after
    /// repeated model faults) and 429 when the queue is already at a bound; true when it answered.
    /// </summary>
    public static async Task<bool> RejectIfBusyAsync(HttpContext context, IInferenceEngine engine)
    {
        if (!engine.AcceptsWork)
        {
            await WriteUnavailableAsync(context).ConfigureAwait(false);
            return true;
        }

        if (engine.IsQueueFull)
        {
            await WriteQueueFullAsync(context).ConfigureAwait(false);
            return true;
        }

        return false;
    }

    /// <summary>
    /// Serves one generation endpoint's request from admission to its log line: admission (<see cref="RejectIfBusyAsync"/>),
    /// the body read and handed to <paramref name="prepare"/> (which throws <see cref="RequestValidationException"/> for
    /// the 400), the generation (<see cref="RunAsync"/>), then the request's one log line. With <paramref name="logPrompt"/>
    /// (<c>--log-requests</c>) the body's <paramref name="promptField"/> is logged too.
    /// </summary>
    /// <param name="context">The HTTP exchange.</param>
    /// <param name="engine">The engine.</param>
    /// <param name="limits">The server's per-request limits (<c>--max-request-timeout</c>).</param>
    /// <param name="time">The clock of the request's timings and deadline.</param>
    /// <param name="logger">The request log.</param>
    /// <param name="logPrompt">Whether the prompt is logged.</param>
    /// <param name="id">The response's id (<c>cmpl-...</c>, <c>chatcmpl-...</c>, <c>resp_...</c>), for the log.</param>
    /// <param name="promptField">The body field that holds the prompt (<c>prompt</c>, <c>messages</c>, <c>input</c>).</param>
    /// <param name="prepare">Validates the body and makes the prompts, the writer and the constraints.</param>
    public static async Task ServeAsync(HttpContext context, IInferenceEngine engine, ServingLimits limits, TimeProvider time, ILogger logger, bool logPrompt, string id, string promptField, Func<System.Text.Json.JsonElement, PreparedGeneration> prepare)
    {
        var startedAt = time.GetTimestamp();
        if (await RejectIfBusyAsync(context, engine).ConfigureAwait(false))
        {
            return;
        }

        PreparedGeneration prepared;
        try
        {
            using var document = await JsonBody.ReadAsync(context).ConfigureAwait(false);
            if (logPrompt && document.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object && document.RootElement.TryGetProperty(promptField, out var prompt))
            {
                ServingLog.CompletionPrompt(logger, id, prompt.GetRawText());
            }

            prepared = prepare(document.RootElement);
        }
        catch (RequestValidationException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
            return;
        }

        var usage = new UsageCounter();
        try
        {
            await RunAsync(context, engine, limits, context.TraceIdentifier, prepared.Prompts, prepared.Writer, prepared.Constraints, usage, time).ConfigureAwait(false);
        }
        finally
        {
            LogFinished(context, logger, id, engine.Model.Name, usage, time.GetElapsedTime(startedAt));
        }
    }

    /// <summary>Runs the request to the end of its response.</summary>
    /// <param name="context">The HTTP exchange.</param>
    /// <param name="engine">The engine.</param>
    /// <param name="limits">The server's per-request limits (<c>--max-request-timeout</c>).</param>
    /// <param name="requestId">The request's id (choices get <c>-k</c> suffixes).</param>
    /// <param name="prompts">Prompt token ids; each gets <see cref="GenerationSettings.N"/> choices.</param>
    /// <param name="writer">Writes the response.</param>
    /// <param name="constraints">Creates each choice's output constraint, or null for unconstrained output.</param>
    /// <param name="usage">Receives every choice's final counts and timings (for the response and the request's log line).</param>
    /// <param name="time">The clock of the request's deadline.</param>
    public static async Task RunAsync(HttpContext context, IInferenceEngine engine, ServingLimits limits, string requestId, IReadOnlyList<IReadOnlyList<int>> prompts, IResponseWriter writer, Func<ITokenConstraint>? constraints, UsageCounter usage, TimeProvider time)
    {
        var settings = writer.Settings;
        TimeSpan timeout;
        try
        {
            timeout = EffectiveTimeout(context, limits, settings);
        }
        catch (RequestValidationException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
            return;
        }

        // The deadline counts from submission; on expiry the requests leave the batch at the next iteration, freeing their blocks.
        using var deadline = new CancellationTokenSource(timeout, time);
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, deadline.Token);
        var generations = new List<GenerationRequest>(checked(prompts.Count * settings.N));
        for (var p = 0; p < prompts.Count; p++)
        {
            var group = settings.N > 1 ? new object() : null;
            for (var k = 0; k < settings.N; k++)
            {
                generations.Add(new GenerationRequest
                {
                    RequestId = $"{requestId}-{generations.Count}",
                    PromptTokens = prompts[p],
                    Sampling = settings.ForChoice(k),
                    Stop = settings.Stop,
                    Priority = settings.Priority,
                    PrefixGroup = group,
                    Constraint = constraints?.Invoke(),
                    SkipSpecialTokens = settings.SkipSpecialTokens,
                });
            }
        }

        try
        {
            var readers = new ChannelReader<GenerationUpdate>[generations.Count];
            switch (engine.Submit(generations, readers, lifetime.Token))
            {
                case SubmitResult.QueueFull:
                    await WriteQueueFullAsync(context).ConfigureAwait(false);
                    return;
                case SubmitResult.Unavailable:
                    await WriteUnavailableAsync(context).ConfigureAwait(false);
                    return;
            }

            var choices = new List<ChannelReader<GenerationUpdate>>(readers);
            var outcome = new Outcome(deadline, timeout);
            if (settings.Stream)
            {
                await StreamAsync(context, choices, writer, usage, outcome).ConfigureAwait(false);
            }
            else
            {
                await RespondAsync(context, choices, writer, usage, outcome).ConfigureAwait(false);
            }
        }
        catch (Exception) when (MarkFailed(context))
        {
            // Not reached: the filter notes the failure for LogFinished and lets the exception go on to the exception handler.
        }
        finally
        {
            await lifetime.CancelAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The smallest of the server's maximum, the <c>timeout</c> field and the <c>X-Request-Timeout</c> header.</summary>
    private static TimeSpan EffectiveTimeout(HttpContext context, ServingLimits limits, GenerationSettings settings)
    {
        var timeout = limits.MaxRequestTimeout;
        if (settings.Timeout is { } field && field < timeout)
        {
            timeout = field;
        }

        if (context.Request.Headers.TryGetValue(TimeoutHeader, out var values))
        {
            var text = values.ToString();
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) || !double.IsFinite(seconds) || seconds < ServingLimits.ShortestTimeoutSeconds || seconds > ServingLimits.LongestTimeoutSeconds)
            {
                throw new RequestValidationException(null, string.Create(CultureInfo.InvariantCulture, $"The {TimeoutHeader} header must be a number of seconds from {ServingLimits.ShortestTimeoutSeconds} to {ServingLimits.LongestTimeoutSeconds}, not '{text}'."));
            }

            var header = TimeSpan.FromSeconds(seconds);
            if (header < timeout)
            {
                timeout = header;
            }
        }

        return timeout;
    }

    private static Task WriteQueueFullAsync(HttpContext context)
    {
        context.Response.Headers.RetryAfter = "1";
        return OpenAiErrors.WriteAsync(context, StatusCodes.Status429TooManyRequests, "The server's request queue is full; retry shortly.", "rate_limit_error", null, "queue_full");
    }

    private static Task WriteUnavailableAsync(HttpContext context)
    {
        context.Response.Headers.RetryAfter = "1";
        return OpenAiErrors.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, "The engine is not accepting work: it is stopping, or unhealthy after repeated model failures; retry later.", "server_error", null, "unavailable");
    }

    /// <summary>
    /// Logs the request's one line: model, token counts, queue time, TTFT, total time, finish reasons, status. A run
    /// that threw (<see cref="RunAsync"/> marks it) before its response started is logged as the 500 the exception
    /// handler then writes, not as the 200 the response still holds.
    /// </summary>
    public static void LogFinished(HttpContext context, ILogger logger, string id, string model, UsageCounter usage, TimeSpan total)
    {
        var status = context.RequestAborted.IsCancellationRequested ? 499
            : context.Items.ContainsKey(FailedKey) && !context.Response.HasStarted ? StatusCodes.Status500InternalServerError
            : context.Response.StatusCode;
        ServingLog.RequestFinished(logger, id, model, usage, total, status);
    }

    /// <summary>The <see cref="HttpContext.Items"/> key that marks a run that threw.</summary>
    private static readonly object FailedKey = new();

    /// <summary>Marks the request as failed for <see cref="LogFinished"/>; false, so the exception is not caught.</summary>
    internal static bool MarkFailed(HttpContext context)
    {
        context.Items[FailedKey] = true;
        return false;
    }

    private static async Task RespondAsync(HttpContext context, List<ChannelReader<GenerationUpdate>> choices, IResponseWriter writer, UsageCounter usage, Outcome outcome)
    {
        var results = new ChoiceResult[choices.Count];
        for (var i = 0; i < choices.Count; i++)
        {
            var result = new ChoiceResult();
            await foreach (var update in choices[i].ReadAllAsync(context.RequestAborted).ConfigureAwait(false))
            {
                result.Add(update);
            }

            usage.Add(result.Final, writer.PromptIndex(i));
            if (result.Final.Finish is FinishReason.Error or FinishReason.Cancelled)
            {
                await WriteFailureAsync(context, result.Final, outcome).ConfigureAwait(false);
                return;
            }

            results[i] = result;
        }

        var buffer = new ArrayBufferWriter<byte>();
        writer.WriteComplete(buffer, results);
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }

    private static Task WriteFailureAsync(HttpContext context, GenerationUpdate final, Outcome outcome)
    {
        var (status, message, type, code) = Describe(final, outcome);
        return OpenAiErrors.WriteAsync(context, status, message, type, null, code);
    }

    /// <summary>
    /// What a failed choice tells the caller: a failure of the request's own output constraint is a 400
    /// <c>constraint_failed</c>; an engine fault is a 500 naming it; a deadline that expired is a 504
    /// <c>timeout</c> (gRPC maps DEADLINE_EXCEEDED the same way); otherwise the engine dropped it (stopping, unhealthy): 503.
    /// </summary>
    private static (int Status, string Message, string Type, string Code) Describe(GenerationUpdate final, Outcome outcome)
    {
        if (final.Finish == FinishReason.Error && final.RequestFault)
        {
            // The request's own output constraint (a schema whose masks cost too much, or that allows no token here).
            return (StatusCodes.Status400BadRequest, final.Error ?? "The output constraint failed.", "invalid_request_error", "constraint_failed");
        }

        if (final.Finish == FinishReason.Error)
        {
            return (StatusCodes.Status500InternalServerError, final.Error ?? "The engine failed.", "server_error", "engine_error");
        }

        if (outcome.Deadline.IsCancellationRequested)
        {
            var seconds = outcome.Timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);
            return (StatusCodes.Status504GatewayTimeout, $"The request did not finish within its {seconds} s deadline (the smallest of 'timeout', {TimeoutHeader} and the server's maximum); its work was stopped.", "timeout_error", "timeout");
        }

        return (StatusCodes.Status503ServiceUnavailable, final.Error ?? "The request was cancelled.", "server_error", "cancelled");
    }

    private static async Task StreamAsync(HttpContext context, List<ChannelReader<GenerationUpdate>> choices, IResponseWriter writer, UsageCounter usage, Outcome outcome)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers["X-Accel-Buffering"] = "no";
        await context.Response.StartAsync(context.RequestAborted).ConfigureAwait(false);

        var merged = Merge(choices, context.RequestAborted);

        // Events go straight into Kestrel's response pipe: no intermediate buffer or copy per token, one flush per event.
        var pipe = context.Response.BodyWriter;
        var sentFirst = new bool[choices.Count];
        await foreach (var (index, update) in merged.ReadAllAsync(context.RequestAborted).ConfigureAwait(false))
        {
            if (update.IsFinal)
            {
                usage.Add(update, writer.PromptIndex(index));
                if (update.Finish is FinishReason.Error or FinishReason.Cancelled)
                {
                    var (_, message, type, code) = Describe(update, outcome);
                    writer.WriteStreamError(pipe, message, type, code);
                    await pipe.FlushAsync(context.RequestAborted).ConfigureAwait(false);
                    return;
                }
            }

            writer.WriteEvents(pipe, index, update, first: !sentFirst[index]);
            sentFirst[index] = true;
            if (pipe.UnflushedBytes > 0)
            {
                await pipe.FlushAsync(context.RequestAborted).ConfigureAwait(false);
            }
        }

        writer.WriteStreamEnd(pipe, usage);
        await pipe.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }

    private static ChannelReader<(int Index, GenerationUpdate Update)> Merge(List<ChannelReader<GenerationUpdate>> choices, CancellationToken cancellationToken)
    {
        if (choices.Count == 1)
        {
            // One choice (the common case): no merging task and no second channel hop per token.
            return new SingleChoiceReader(choices[0]);
        }

        var merged = Channel.CreateUnbounded<(int, GenerationUpdate)>(new UnboundedChannelOptions { SingleReader = true });
        var pending = choices.Count;
        for (var i = 0; i < choices.Count; i++)
        {
            var index = i;
            _ = Task.Run(
                async () =>
                {
                    try
                    {
                        await foreach (var update in choices[index].ReadAllAsync(cancellationToken).ConfigureAwait(false))
                        {
                            merged.Writer.TryWrite((index, update));
                        }
                    }
                    catch (OperationCanceledException)
                    {
                    }
                    finally
                    {
                        if (Interlocked.Decrement(ref pending) == 0)
                        {
                            merged.Writer.TryComplete();
                        }
                    }
                },
                CancellationToken.None);
        }

        return merged.Reader;
    }

    /// <summary>The request's deadline, to tell a timeout from other cancellations.</summary>
    private readonly record struct Outcome(CancellationTokenSource Deadline, TimeSpan Timeout);
}
