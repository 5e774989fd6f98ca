// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using System.Text.Unicode;
using Microsoft.AspNetCore.Http.Features;

namespace InferenceServer.OpenAi;

/// <summary>
/// Reads a request body as JSON. Malformed JSON, bytes that are not UTF-8 and string escapes that are not valid UTF-16
/// (a lone surrogate such as <c>"\ud800"</c>) are a 400 naming the problem; a body over Kestrel's
/// <c>MaxRequestBodySize</c> (<c>--max-request-body-size</c>) is a 413. Every string the handlers later read is
/// therefore readable: none of them can throw while the request is being parsed.
/// </summary>
internal static class JsonBody
{
    /// <summary>Deepest nesting accepted.</summary>
    public const int MaxDepth = 64;

    /// <summary>Parses the request body.</summary>
    public static async Task<JsonDocument> ReadAsync(HttpContext context)
    {
        var body = new MemoryStream();
        try
        {
            await context.Request.Body.CopyToAsync(body, context.RequestAborted).ConfigureAwait(false);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            var limit = context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;
            var message = limit is { } most ? $"The request body is larger than the server's limit of {most} bytes (--max-request-body-size)." : "The request body is too large.";
            throw new RequestValidationException(null, message, StatusCodes.Status413PayloadTooLarge, "invalid_request_error", "request_too_large");
        }
        catch (BadHttpRequestException ex)
        {
            throw new RequestValidationException(null, $"The request body could not be read: {ex.Message}", ex.StatusCode);
        }
        catch (IOException ex) when (!context.RequestAborted.IsCancellationRequested)
        {
            // Kestrel reports malformed chunked framing (a chunk size that is not hex or overflows) as an IOException.
            throw new RequestValidationException(null, $"The request body could not be read: its framing is malformed ({ex.Message.TrimEnd('.')}); check Transfer-Encoding: chunked or Content-Length.");
        }

        var bytes = body.GetBuffer().AsMemory(0, (int)body.Length);
        if (!Utf8.IsValid(bytes.Span))
        {
            throw new RequestValidationException(null, "The request body is not valid UTF-8.");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = MaxDepth });
        }
        catch (JsonException ex)
        {
            throw new RequestValidationException(null, Describe(ex));
        }

        try
        {
            CheckStrings(document.RootElement);
        }
        catch (InvalidOperationException)
        {
            document.Dispose();
            throw new RequestValidationException(null, "The request body has a string with an invalid escape (a lone UTF-16 surrogate such as \\ud800).");
        }

        return document;
    }

    /// <summary>
    /// The parser's complaint in the API's terms: the depth limit by name, else where the JSON broke and why, without
    /// the reader's advice ("Change the reader options") or its position suffixes.
    /// </summary>
    internal static string Describe(JsonException ex)
    {
        var message = ex.Message;
        if (message.Contains("maximum configured depth", StringComparison.Ordinal))
        {
            return $"The request body nests objects and arrays more than {MaxDepth} levels deep, the most this server accepts.";
        }

        foreach (var suffix in (string[])[" Path:", " LineNumber:", " Change the reader options"])
        {
            var cut = message.IndexOf(suffix, StringComparison.Ordinal);
            if (cut > 0)
            {
                message = message[..cut];
            }
        }

        var where = ex.LineNumber is { } line ? $" at line {line + 1}, byte {(ex.BytePositionInLine ?? 0) + 1}" : string.Empty;
        return $"The request body is not valid JSON{where}: {message.Trim().TrimEnd('.')}.";
    }

    /// <summary>Reads every string and property name once, so that an undecodable one fails here (InvalidOperationException).</summary>
    private static void CheckStrings(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                _ = element.GetString();
                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    CheckStrings(item);
                }

                break;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    _ = property.Name;
                    CheckStrings(property.Value);
                }

                break;
        }
    }
}
