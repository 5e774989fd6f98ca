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
    /// <summary>Handles one request.</summary>
    public static async Task HandleAsync(HttpContext context, ContinuousBatchScheduler scheduler, ChatPromptRenderer renderer, StructuredOutput structured, TimeProvider time)
    {
        ChatCompletionRequest request;
        Func<ITokenConstraint>? constraints;
        if (await GenerationRunner.RejectIfBusyAsync(context, scheduler).ConfigureAwait(false))
        {
            return;
        }

        try
        {
            using var document = await JsonBody.ReadAsync(context).ConfigureAwait(false);
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

        var writer = new ChatResponseWriter("chatcmpl-" + context.TraceIdentifier, time.GetUtcNow().ToUnixTimeSeconds(), scheduler.Model, request);
        await GenerationRunner.RunAsync(context, scheduler, context.TraceIdentifier, [request.Prompt], writer, constraints, time).ConfigureAwait(false);
    }
}
