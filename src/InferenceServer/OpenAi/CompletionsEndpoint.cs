// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Serving;

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
    public static Task HandleAsync(HttpContext context, IInferenceEngine engine, ServingLimits limits, StructuredOutput structured, TimeProvider time, ILogger logger, bool logPrompt)
    {
        var id = "cmpl-" + context.TraceIdentifier;
        return GenerationRunner.ServeAsync(context, engine, limits, time, logger, logPrompt, id, "prompt", body =>
        {
            var request = CompletionRequest.Parse(body, engine.Model);
            var constraints = structured.CreateFactory(request.Settings.Format);
            return new PreparedGeneration(request.Prompts, new CompletionResponseWriter(id, time.GetUtcNow().ToUnixTimeSeconds(), engine.Model, request), constraints);
        });
    }
}
