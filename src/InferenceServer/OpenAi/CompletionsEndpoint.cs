// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers;
using System.Text.Json;
using System.Threading.Channels;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Hosting;

namespace InferenceServer.OpenAi;

/// <summary>
/// <c>POST /v1/completions</c>: validates, submits one sequence per prompt and choice to the scheduler, and answers with
/// one JSON body or a stream of Server-Sent Events in OpenAI's format ending with <c>data: [DONE]</c>.
/// </summary>
internal static class CompletionsEndpoint
{
    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    /// <summary>
    /// Handles one request, and logs one line when it ends (model, token counts, queue time, TTFT, total time, finish
    /// reasons, status). The prompt is logged only when <paramref name="logPrompt"/> (<c>--log-requests</c>).
    /// </summary>
    public static async Task HandleAsync(HttpContext context, ContinuousBatchScheduler scheduler, TimeProvider time, ILogger logger, bool logPrompt)
    {
        var startedAt = time.GetTimestamp();
        var id = "cmpl-" + Guid.NewGuid().ToString("N");
        CompletionRequest request;
        try
        {
            using var document = await ReadBodyAsync(context).ConfigureAwait(false);
            if (logPrompt && document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("prompt", out var prompt))
            {
                ServerLog.CompletionPrompt(logger, id, prompt.GetRawText());
            }

            request = CompletionRequest.Parse(document.RootElement, scheduler.Model);
        }
        catch (RequestValidationException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
            return;
        }

        var usage = new UsageCounter();
        try
        {
            await GenerateAsync(context, scheduler, time, request, id, usage).ConfigureAwait(false);
        }
        finally
        {
            var ttft = usage.TimeToFirstToken is { } first ? first.TotalMilliseconds : -1;
            var status = context.RequestAborted.IsCancellationRequested ? 499 : context.Response.StatusCode;
            var reasons = usage.FinishReasons.Length > 0 ? usage.FinishReasons : "abort";
            ServerLog.CompletionFinished(logger, id, scheduler.Model.Name, usage.PromptTokens, usage.CompletionTokens, usage.QueueTime.TotalMilliseconds, ttft, time.GetElapsedTime(startedAt).TotalMilliseconds, reasons, status);
        }
    }

    private static async Task GenerateAsync(HttpContext context, ContinuousBatchScheduler scheduler, TimeProvider time, CompletionRequest request, string id, UsageCounter usage)
    {
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var choices = new List<ChannelReader<GenerationUpdate>>();
        try
        {
            for (var p = 0; p < request.Prompts.Count; p++)
            {
                var group = request.N > 1 ? new object() : null;
                for (var k = 0; k < request.N; k++)
                {
                    var generation = new GenerationRequest
                    {
                        RequestId = $"{id}-{choices.Count}",
                        PromptTokens = request.Prompts[p],
                        Sampling = request.N > 1 && request.Sampling.Seed is { } seed ? request.Sampling with { Seed = unchecked(seed + k) } : request.Sampling,
                        Stop = request.Stop,
                        Priority = request.Priority,
                        PrefixGroup = group,
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

            var response = new CompletionResponseWriter(id, created, scheduler.Model.Name, request);
            if (request.Stream)
            {
                await StreamAsync(context, choices, response, usage).ConfigureAwait(false);
            }
            else
            {
                await RespondAsync(context, choices, response, usage).ConfigureAwait(false);
            }
        }
        finally
        {
            // Whatever happened to the response, nothing keeps generating for it.
            await lifetime.CancelAsync().ConfigureAwait(false);
        }
    }

    private static async Task<JsonDocument> ReadBodyAsync(HttpContext context)
    {
        try
        {
            return await JsonDocument.ParseAsync(context.Request.Body, new JsonDocumentOptions { MaxDepth = 64 }, context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException ex)
        {
            throw new RequestValidationException(null, $"The request body is not valid JSON: {ex.Message}");
        }
    }

    private static async Task RespondAsync(HttpContext context, List<ChannelReader<GenerationUpdate>> choices, CompletionResponseWriter response, UsageCounter usage)
    {
        var results = new ChoiceResult[choices.Count];
        for (var i = 0; i < choices.Count; i++)
        {
            var result = new ChoiceResult();
            await foreach (var update in choices[i].ReadAllAsync(context.RequestAborted).ConfigureAwait(false))
            {
                result.Add(update);
            }

            usage.Add(result.Final, response.PromptIndex(i));

            if (result.Final.Finish is FinishReason.Error or FinishReason.Cancelled)
            {
                await WriteFailureAsync(context, result.Final).ConfigureAwait(false);
                return;
            }

            results[i] = result;
        }

        var buffer = new ArrayBufferWriter<byte>();
        response.WriteComplete(buffer, results);
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }

    private static Task WriteFailureAsync(HttpContext context, GenerationUpdate final)
        => final.Finish == FinishReason.Error
            ? OpenAiErrors.WriteAsync(context, StatusCodes.Status500InternalServerError, final.Error ?? "The engine failed.", "server_error", null, "engine_error")
            : OpenAiErrors.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, final.Error ?? "The request was cancelled.", "server_error", null, "cancelled");

    private static async Task StreamAsync(HttpContext context, List<ChannelReader<GenerationUpdate>> choices, CompletionResponseWriter response, UsageCounter usage)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers["X-Accel-Buffering"] = "no";
        await context.Response.StartAsync(context.RequestAborted).ConfigureAwait(false);

        var merged = Merge(choices, context.RequestAborted);
        var buffer = new ArrayBufferWriter<byte>();
        var sentFirst = new bool[choices.Count];
        await foreach (var (index, update) in merged.ReadAllAsync(context.RequestAborted).ConfigureAwait(false))
        {
            buffer.ResetWrittenCount();
            if (update.IsFinal)
            {
                usage.Add(update, response.PromptIndex(index));
                if (update.Finish is FinishReason.Error or FinishReason.Cancelled)
                {
                    buffer.Write(DataPrefix);
                    buffer.Write(OpenAiErrors.Envelope(update.Error ?? "The request was cancelled.", "server_error", null, update.Finish == FinishReason.Error ? "engine_error" : "cancelled"));
                    buffer.Write(EventEnd);
                    buffer.Write(Done);
                    await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
                    return;
                }
            }
            else if (update.Text.Length == 0 && !response.Request.ReturnTokenIds)
            {
                continue;
            }

            buffer.Write(DataPrefix);
            response.WriteChunk(buffer, index, update, includePrompt: !sentFirst[index]);
            sentFirst[index] = true;
            buffer.Write(EventEnd);
            await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
            await context.Response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
        }

        buffer.ResetWrittenCount();
        if (response.Request.IncludeUsage)
        {
            buffer.Write(DataPrefix);
            response.WriteUsageChunk(buffer, usage);
            buffer.Write(EventEnd);
        }

        buffer.Write(Done);
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
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
