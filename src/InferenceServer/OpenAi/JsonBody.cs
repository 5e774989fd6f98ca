// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;

namespace InferenceServer.OpenAi;

/// <summary>Reads a request body as JSON; malformed JSON is a 400 naming the problem.</summary>
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
    }
}
