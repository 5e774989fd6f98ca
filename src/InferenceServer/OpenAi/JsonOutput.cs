// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Encodings.Web;
using System.Text.Json;

namespace InferenceServer.OpenAi;

/// <summary>Writer settings for every JSON response: minimal escaping, so code and quotes stay readable as OpenAI's do.</summary>
internal static class JsonOutput
{
    /// <summary>Options for <see cref="Utf8JsonWriter"/>: only what JSON requires is escaped (never HTML-sensitive characters).</summary>
    public static JsonWriterOptions Options { get; } = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
