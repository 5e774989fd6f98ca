// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Scheduling;

namespace InferenceServer.OpenAi;

/// <summary>
/// <c>POST /v1/completions</c>: validates, then lets <see cref="GenerationRunner"/> submit one sequence per prompt and
/// choice and answer in OpenAI's <c>text_completion</c> shape.
/// </summary>
internal static class CompletionsEndpoint
{
    /// <summary>Handles one request.</summary>
    public static async Task HandleAsync(HttpContext context, ContinuousBatchScheduler scheduler, StructuredOutput structured, TimeProvider time)
    {
        CompletionRequest request;
        Func<Engine.Requests.ITokenConstraint>? constraints;
        if (await GenerationRunner.RejectIfBusyAsync(context, scheduler).ConfigureAwait(false))
        {
            return;
        }

        try
        {
            using var document = await JsonBody.ReadAsync(context).ConfigureAwait(false);
            request = CompletionRequest.Parse(document.RootElement, scheduler.Model);
            constraints = structured.CreateFactory(request.Settings.Format);
        }
        catch (RequestValidationException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
            return;
        }

        var id = "cmpl-" + context.TraceIdentifier;
        var writer = new CompletionResponseWriter(id, time.GetUtcNow().ToUnixTimeSeconds(), scheduler.Model, request);
        await GenerationRunner.RunAsync(context, scheduler, context.TraceIdentifier, request.Prompts, writer, constraints, time).ConfigureAwait(false);
    }
}
