// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Serving;

namespace InferenceServer.OpenAi.Chat;

/// <summary>
/// <c>POST /v1/chat/completions</c>: renders the conversation with the chat template, then lets
/// <see cref="GenerationRunner"/> generate the choices and answer in OpenAI's <c>chat.completion</c> shape.
/// </summary>
internal static class ChatCompletionsEndpoint
{
    /// <summary>Handles one request and logs its line when it ends (the messages only with <paramref name="logPrompt"/>).</summary>
    public static Task HandleAsync(HttpContext context, IInferenceEngine engine, ServingLimits limits, ChatPromptRenderer renderer, StructuredOutput structured, TimeProvider time, ILogger logger, bool logPrompt)
    {
        var id = "chatcmpl-" + context.TraceIdentifier;
        return GenerationRunner.ServeAsync(context, engine, limits, time, logger, logPrompt, id, "messages", body =>
        {
            var request = ChatCompletionRequest.Parse(body, engine.Model, renderer);
            var constraints = request.CreateConstraints(structured);
            return new PreparedGeneration([request.Prompt], new ChatResponseWriter(id, time.GetUtcNow().ToUnixTimeSeconds(), engine.Model, request), constraints);
        });
    }
}
