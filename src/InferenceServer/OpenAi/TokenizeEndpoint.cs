// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers;
using System.Text.Json;
using InferenceServer.Engine;

namespace InferenceServer.OpenAi;

/// <summary>
/// vLLM's <c>POST /tokenize</c> (a <c>prompt</c>, or chat <c>messages</c> rendered with the chat template) and
/// <c>POST /detokenize</c> (<c>tokens</c> to text).
/// </summary>
internal static class TokenizeEndpoint
{
    /// <summary>Longest prompt text accepted, in characters.</summary>
    private const int MaxPromptChars = 1 << 22;

    /// <summary>Answers <c>/tokenize</c>: <c>{"count", "max_model_len", "tokens", "token_strs"?}</c>.</summary>
    public static async Task TokenizeAsync(HttpContext context, ServedModel model, Chat.ChatPromptRenderer chat)
    {
        try
        {
            using var document = await JsonBody.ReadAsync(context).ConfigureAwait(false);
            var reader = new JsonRequestReader(document.RootElement);
            CheckModel(reader, model);
            var tokenizer = RequireTokenizer(model, "prompt");
            IReadOnlyList<int> ids;
            if (reader.TryGet("messages", out _))
            {
                if (reader.TryGet("prompt", out _))
                {
                    throw new RequestValidationException("messages", "Send either 'prompt' or 'messages', not both.");
                }

                var tools = reader.TryGet("tools", out var toolsElement) ? ToolCalls.ToolValidation.ParseTools(toolsElement) : null;

                // Chat prompts carry their special tokens in the template, so add_special_tokens defaults to false here.
                var text = chat.Render(reader, defaultAddGenerationPrompt: true, tools);
                ids = tokenizer.Encode(text, reader.Bool("add_special_tokens") ?? false);
            }
            else
            {
                var prompt = reader.String("prompt") ?? throw new RequestValidationException("prompt", "'prompt' (a string) or 'messages' is required.");
                if (prompt.Length > MaxPromptChars)
                {
                    throw new RequestValidationException("prompt", $"'prompt' may hold at most {MaxPromptChars} characters; got {prompt.Length}.");
                }

                ids = tokenizer.Encode(prompt, reader.Bool("add_special_tokens") ?? true);
            }

            var withStrings = reader.Bool("return_token_strs") ?? false;
            var buffer = new ArrayBufferWriter<byte>();
            using (var writer = new Utf8JsonWriter(buffer, JsonOutput.Options))
            {
                writer.WriteStartObject();
                writer.WriteNumber("count", ids.Count);
                writer.WriteNumber("max_model_len", model.Spec.ContextLength);
                writer.WriteStartArray("tokens");
                foreach (var id in ids)
                {
                    writer.WriteNumberValue(id);
                }

                writer.WriteEndArray();
                if (withStrings)
                {
                    writer.WriteStartArray("token_strs");
                    foreach (var id in ids)
                    {
                        writer.WriteStringValue(tokenizer.IdToToken(id));
                    }

                    writer.WriteEndArray();
                }

                writer.WriteEndObject();
            }

            context.Response.ContentType = "application/json";
            await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
        }
        catch (RequestValidationException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
        }
    }

    /// <summary>Answers <c>/detokenize</c>: <c>{"prompt": text}</c>.</summary>
    public static async Task DetokenizeAsync(HttpContext context, ServedModel model)
    {
        try
        {
            using var document = await JsonBody.ReadAsync(context).ConfigureAwait(false);
            var reader = new JsonRequestReader(document.RootElement);
            CheckModel(reader, model);
            var tokenizer = RequireTokenizer(model, "tokens");
            var ids = reader.Integers("tokens", 0, model.Spec.VocabularySize - 1)
                ?? throw new RequestValidationException("tokens", "'tokens' (an array of token ids) is required.");
            var text = tokenizer.Decode(ids.ToArray(), reader.Bool("skip_special_tokens") ?? false);
            var buffer = new ArrayBufferWriter<byte>();
            using (var writer = new Utf8JsonWriter(buffer, JsonOutput.Options))
            {
                writer.WriteStartObject();
                writer.WriteString("prompt", text);
                writer.WriteEndObject();
            }

            context.Response.ContentType = "application/json";
            await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
        }
        catch (RequestValidationException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
        }
    }

    /// <summary>Rejects a <c>model</c> other than the served one with 404.</summary>
    internal static void CheckModel(JsonRequestReader reader, ServedModel model)
    {
        var name = reader.String("model");
        if (name is not null && !model.Serves(name))
        {
            throw new RequestValidationException("model", $"The model '{name}' does not exist; this server serves '{model.Name}'.", StatusCodes.Status404NotFound, "invalid_request_error", "model_not_found");
        }
    }

    private static Tokenization.HfTokenizer RequireTokenizer(ServedModel model, string param)
        => model.Tokenizer ?? throw new RequestValidationException(param, $"The model '{model.Name}' has no tokenizer (its folder has no tokenizer.json), so it cannot tokenize or detokenize text.");
}
