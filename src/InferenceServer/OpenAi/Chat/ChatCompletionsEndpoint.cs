// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;

namespace InferenceServer.OpenAi.Chat;

/// <summary>
/// <c>POST /v1/chat/completions</c>: renders the conversation with the chat template, then lets
/// <see cref="GenerationRunner"/> generate the choices and answer in OpenAI's <c>chat.completion</c> shape.
/// </summary>
internal static class ChatCompletionsEndpoint
{
    /// <summary>Handles one request and logs its line when it ends (the messages only with <paramref name="logPrompt"/>).</summary>
    public static async Task HandleAsync(HttpContext context, ContinuousBatchScheduler scheduler, ChatPromptRenderer renderer, StructuredOutput structured, TimeProvider time, ILogger logger, bool logPrompt)
    {
        var startedAt = time.GetTimestamp();
        var id = "chatcmpl-" + context.TraceIdentifier;
        ChatCompletionRequest request;
        Func<ITokenConstraint>? constraints;
        if (await GenerationRunner.RejectIfBusyAsync(context, scheduler).ConfigureAwait(false))
        {
            return;
        }

        try
        {
            using var document = await JsonBody.ReadAsync(context).ConfigureAwait(false);
            if (logPrompt && document.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object && document.RootElement.TryGetProperty("messages", out var messages))
            {
                Hosting.ServerLog.CompletionPrompt(logger, id, messages.GetRawText());
            }

            request = ChatCompletionRequest.Parse(document.RootElement, scheduler.Model, renderer);
            constraints = request.ToolSchema is { } schema
                ? structured.CreateFactory(schema, strict: true, "tools")
                : structured.CreateFactory(request.Settings.Format);
        }
        catch (RequestValidationException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
            return;
        }

        var usage = new UsageCounter();
        try
        {
            var writer = new ChatResponseWriter(id, time.GetUtcNow().ToUnixTimeSeconds(), scheduler.Model, request);
            await GenerationRunner.RunAsync(context, scheduler, context.TraceIdentifier, [request.Prompt], writer, constraints, usage, time).ConfigureAwait(false);
        }
        finally
        {
            GenerationRunner.LogFinished(context, logger, id, scheduler.Model.Name, usage, time.GetElapsedTime(startedAt));
        }
    }
}
