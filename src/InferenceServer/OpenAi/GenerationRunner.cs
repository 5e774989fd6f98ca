// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers;
using System.Threading.Channels;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;

namespace InferenceServer.OpenAi;

/// <summary>
/// What the completion endpoints share: submits one sequence per prompt and choice to the scheduler (429 when its queue
/// is full), then answers with one JSON body or a stream of Server-Sent Events ending with <c>data: [DONE]</c>, in the
/// shape an <see cref="IResponseWriter"/> writes. Whatever happens to the response, nothing keeps generating for it.
/// </summary>
internal static class GenerationRunner
{
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    /// <summary>Runs the request to the end of its response.</summary>
    /// <param name="context">The HTTP exchange.</param>
    /// <param name="scheduler">The engine.</param>
    /// <param name="requestId">The request's id (choices get <c>-k</c> suffixes).</param>
    /// <param name="prompts">Prompt token ids; each gets <see cref="GenerationSettings.N"/> choices.</param>
    /// <param name="writer">Writes the response.</param>
    /// <param name="constraints">Creates each choice's output constraint, or null for unconstrained output.</param>
    /// <param name="usage">Receives every choice's final counts and timings (for the response and the request's log line).</param>
    public static async Task RunAsync(HttpContext context, ContinuousBatchScheduler scheduler, string requestId, IReadOnlyList<IReadOnlyList<int>> prompts, IResponseWriter writer, Func<ITokenConstraint>? constraints, UsageCounter usage)
    {
        var settings = writer.Settings;
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var choices = new List<ChannelReader<GenerationUpdate>>();
        try
        {
            for (var p = 0; p < prompts.Count; p++)
            {
                var group = settings.N > 1 ? new object() : null;
                for (var k = 0; k < settings.N; k++)
                {
                    var generation = new GenerationRequest
                    {
                        RequestId = $"{requestId}-{choices.Count}",
                        PromptTokens = prompts[p],
                        Sampling = settings.ForChoice(k),
                        Stop = settings.Stop,
                        Priority = settings.Priority,
                        PrefixGroup = group,
                        Constraint = constraints?.Invoke(),
                        SkipSpecialTokens = settings.SkipSpecialTokens,
                    };
                    if (!scheduler.TrySubmit(generation, out var updates, lifetime.Token))
                    {
                        context.Response.Headers.RetryAfter = "1";
                        await OpenAiErrors.WriteAsync(context, StatusCodes.Status429TooManyRequests, "The server's request queue is full; retry shortly.", "rate_limit_error", null, "queue_full").ConfigureAwait(false);
                        return;
                    }

                    choices.Add(updates);
                }
            }

            if (settings.Stream)
            {
                await StreamAsync(context, choices, writer, usage).ConfigureAwait(false);
            }
            else
            {
                await RespondAsync(context, choices, writer, usage).ConfigureAwait(false);
            }
        }
        finally
        {
            await lifetime.CancelAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Logs the request's one line: model, token counts, queue time, TTFT, total time, finish reasons, status.</summary>
    public static void LogFinished(HttpContext context, ILogger logger, string id, string model, UsageCounter usage, TimeSpan total)
    {
        var ttft = usage.TimeToFirstToken is { } first ? first.TotalMilliseconds : -1;
        var status = context.RequestAborted.IsCancellationRequested ? 499 : context.Response.StatusCode;
        var reasons = usage.FinishReasons.Length > 0 ? usage.FinishReasons : "abort";
        Hosting.ServerLog.CompletionFinished(logger, id, model, usage.PromptTokens, usage.CompletionTokens, usage.QueueTime.TotalMilliseconds, ttft, total.TotalMilliseconds, reasons, status);
    }

    private static async Task RespondAsync(HttpContext context, List<ChannelReader<GenerationUpdate>> choices, IResponseWriter writer, UsageCounter usage)
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
                await WriteFailureAsync(context, result.Final).ConfigureAwait(false);
                return;
            }

            results[i] = result;
        }

        var buffer = new ArrayBufferWriter<byte>();
        writer.WriteComplete(buffer, results);
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }

    private static Task WriteFailureAsync(HttpContext context, GenerationUpdate final)
        => final.Finish == FinishReason.Error
            ? OpenAiErrors.WriteAsync(context, StatusCodes.Status500InternalServerError, final.Error ?? "The engine failed.", "server_error", null, "engine_error")
            : OpenAiErrors.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, final.Error ?? "The request was cancelled.", "server_error", null, "cancelled");

    private static async Task StreamAsync(HttpContext context, List<ChannelReader<GenerationUpdate>> choices, IResponseWriter writer, UsageCounter usage)
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
                    SseEvents.Write(pipe, OpenAiErrors.Envelope(update.Error ?? "The request was cancelled.", "server_error", null, update.Finish == FinishReason.Error ? "engine_error" : "cancelled"));
                    pipe.Write(Done);
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

        if (writer.Settings.IncludeUsage)
        {
            writer.WriteUsageEvent(pipe, usage);
        }

        pipe.Write(Done);
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
}
