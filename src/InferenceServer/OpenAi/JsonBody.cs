// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;

namespace InferenceServer.OpenAi;

/// <summary>
/// Reads a request body as JSON; malformed JSON is a 400 naming the problem, a body over Kestrel's
/// <c>MaxRequestBodySize</c> (<c>--max-request-body-size</c>) a 413.
/// </summary>
internal static class JsonBody
{
    /// <summary>Deepest nesting accepted.</summary>
    public const int MaxDepth = 64;

    /// <summary>Parses the request body.</summary>
    public static async Task<JsonDocument> ReadAsync(HttpContext context)
    {
        try
        {
            return await JsonDocument.ParseAsync(context.Request.Body, new JsonDocumentOptions { MaxDepth = MaxDepth }, context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException ex)
        {
            throw new RequestValidationException(null, $"The request body is not valid JSON: {ex.Message}");
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            var limit = context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;
            var message = limit is { } bytes ? $"The request body is larger than the server's limit of {bytes} bytes (--max-request-body-size)." : "The request body is too large.";
            throw new RequestValidationException(null, message, StatusCodes.Status413PayloadTooLarge, "invalid_request_error", "request_too_large");
        }
        catch (BadHttpRequestException ex)
        {
            throw new RequestValidationException(null, $"The request body could not be read: {ex.Message}", ex.StatusCode);
        }
    }
}
