// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;

namespace InferenceServer.OpenAi;

/// <summary>Writes OpenAI's error envelope: <c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
internal static class OpenAiErrors
{
    /// <summary>Serializes the envelope.</summary>
    public static byte[] Envelope(string message, string type, string? param, string? code)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, JsonOutput.Options))
        {
            writer.WriteStartObject();
            writer.WriteStartObject("error");
            writer.WriteString("message", message);
            writer.WriteString("type", type);
            WriteNullable(writer, "param", param);
            WriteNullable(writer, "code", code);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        return stream.ToArray();
    }

    /// <summary>Answers the request with <paramref name="status"/> and the envelope.</summary>
    public static async Task WriteAsync(HttpContext context, int status, string message, string type, string? param = null, string? code = null)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(Envelope(message, type, param, code), context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Answers with the error that <paramref name="exception"/> describes.</summary>
    public static Task WriteAsync(HttpContext context, RequestValidationException exception)
        => WriteAsync(context, exception.StatusCode, exception.Message, exception.Type, exception.Param, exception.Code);

    private static void WriteNullable(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is null)
        {
            writer.WriteNull(name);
        }
        else
        {
            writer.WriteString(name, value);
        }
    }
}
