// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers;
using System.Text.Json;
using InferenceServer.Engine;

namespace InferenceServer.OpenAi;

/// <summary><c>GET /v1/models</c> and <c>GET /v1/models/{id}</c>.</summary>
internal static class ModelsEndpoint
{
    /// <summary>Lists the served model.</summary>
    public static async Task ListAsync(HttpContext context, ServedModel model, DateTimeOffset startedAt)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, JsonOutput.Options))
        {
            writer.WriteStartObject();
            writer.WriteString("object", "list");
            writer.WriteStartArray("data");
            WriteModel(writer, model, startedAt);
            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Describes one model, or 404 in OpenAI's envelope.</summary>
    public static async Task GetAsync(HttpContext context, string id, ServedModel model, DateTimeOffset startedAt)
    {
        if (!model.Serves(id))
        {
            await OpenAiErrors.WriteAsync(context, StatusCodes.Status404NotFound, $"The model '{id}' does not exist; this server serves '{model.Name}'.", "invalid_request_error", "model", "model_not_found").ConfigureAwait(false);
            return;
        }

        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, JsonOutput.Options))
        {
            WriteModel(writer, model, startedAt);
        }

        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }

    private static void WriteModel(Utf8JsonWriter writer, ServedModel model, DateTimeOffset startedAt)
    {
        writer.WriteStartObject();
        writer.WriteString("id", model.Name);
        writer.WriteString("object", "model");
        writer.WriteNumber("created", startedAt.ToUnixTimeSeconds());
        writer.WriteString("owned_by", "inferenceserver");
        // vLLM's "root" is the model it was started from; ours is the served id, never the folder's path on this host.
        writer.WriteString("root", model.Name);
        writer.WriteNumber("max_model_len", model.Spec.ContextLength);

        // Where the KV cache lives: the model's device, or its attention devices when offloading (ADR 0005).
        writer.WriteStartArray("kv_devices");
        foreach (var device in model.Decoder.KvDevices)
        {
            writer.WriteStringValue(device.ToString());
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }
}
