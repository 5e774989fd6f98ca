// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Hosting;

namespace InferenceServer.OpenAi;

/// <summary>
/// <c>POST /v1/completions</c>: validates, then lets <see cref="GenerationRunner"/> submit one sequence per prompt and
/// choice and answer in OpenAI's <c>text_completion</c> shape.
/// </summary>
internal static class CompletionsEndpoint
{
    /// <summary>
    /// Handles one request, and logs one line when it ends (model, token counts, queue time, TTFT, total time, finish
    /// reasons, status). The prompt is logged only when <paramref name="logPrompt"/> (<c>--log-requests</c>).
    /// </summary>
    public static async Task HandleAsync(HttpContext context, ContinuousBatchScheduler scheduler, StructuredOutput structured, TimeProvider time, ILogger logger, bool logPrompt)
    {
        var startedAt = time.GetTimestamp();
        var id = "cmpl-" + context.TraceIdentifier;
        CompletionRequest request;
        Func<Engine.Requests.ITokenConstraint>? constraints;
        if (await GenerationRunner.RejectIfBusyAsync(context, scheduler).ConfigureAwait(false))
        {
            return;
        }

        try
        {
            using var document = await JsonBody.ReadAsync(context).ConfigureAwait(false);
            if (logPrompt && document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("prompt", out var prompt))
            {
                ServerLog.CompletionPrompt(logger, id, prompt.GetRawText());
            }

            request = CompletionRequest.Parse(document.RootElement, scheduler.Model);
            constraints = structured.CreateFactory(request.Settings.Format);
        }
        catch (RequestValidationException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
            return;
        }

        var usage = new UsageCounter();
        try
        {
            var writer = new CompletionResponseWriter(id, time.GetUtcNow().ToUnixTimeSeconds(), scheduler.Model, request);
            await GenerationRunner.RunAsync(context, scheduler, context.TraceIdentifier, request.Prompts, writer, constraints, usage, time).ConfigureAwait(false);
        }
        finally
        {
            GenerationRunner.LogFinished(context, logger, id, scheduler.Model.Name, usage, time.GetElapsedTime(startedAt));
        }
    }
}
