// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;

namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>Text and JSON helpers shared by the parsers: marker hold-back for streaming, JSON extents and call objects.</summary>
internal static class ToolCallText
{
    private static readonly JsonWriterOptions CompactOptions = new() { Encoder = JsonOutput.Options.Encoder, Indented = false };

    /// <summary>Length of the longest proper prefix of <paramref name="marker"/> that ends <paramref name="text"/>
    /// (<c>"Hello &lt;tool_"</c> and <c>"&lt;tool_call&gt;"</c> give 6); 0 when none.</summary>
    public static int PartialOverlap(ReadOnlySpan<char> text, string marker)
    {
        var max = Math.Min(marker.Length - 1, text.Length);
        for (var k = max; k > 0; k--)
        {
            if (text[(text.Length - k)..].SequenceEqual(marker.AsSpan(0, k)))
            {
                return k;
            }
        }

        return 0;
    }

    /// <summary>
    /// The safe content prefix for a family whose calls start at <paramref name="marker"/>: the text before the
    /// marker (or before a partial marker at the end), without its trailing white space.
    /// </summary>
    public static int SafePrefixBeforeMarker(ReadOnlySpan<char> text, string marker)
    {
        var index = text.IndexOf(marker, StringComparison.Ordinal);
        var limit = index >= 0 ? index : text.Length - PartialOverlap(text, marker);
        return TrimEndLength(text, limit);
    }

    /// <summary>The length of <c>text[..limit]</c> without trailing white space.</summary>
    public static int TrimEndLength(ReadOnlySpan<char> text, int limit)
    {
        var n = limit;
        while (n > 0 && char.IsWhiteSpace(text[n - 1]))
        {
            n--;
        }

        return n;
    }

    /// <summary>Content that precedes the first call at <paramref name="index"/>: trimmed at the end, null when empty.</summary>
    public static string? ContentBefore(string text, int index)
    {
        var n = TrimEndLength(text, index);
        return n == 0 ? null : text[..n];
    }

    /// <summary>The index of the first character at or after <paramref name="start"/> that is not white space, or the length.</summary>
    public static int SkipWhiteSpace(ReadOnlySpan<char> text, int start)
    {
        var i = start;
        while (i < text.Length && char.IsWhiteSpace(text[i]))
        {
            i++;
        }

        return i;
    }

    /// <summary>
    /// The end (exclusive) of the JSON object or array that opens at <paramref name="start"/>, by bracket matching
    /// outside strings, or -1 when it does not close. Whether it is valid JSON is for the parser to say.
    /// </summary>
    public static int FindJsonValueEnd(string text, int start)
    {
        var depth = 0;
        var inString = false;
        var escaped = false;
        for (var i = start; i < text.Length; i++)
        {
            var c = text[i];
            if (inString)
            {
                if (escaped)
                {
                    escaped = false;
                }
                else if (c == '\\')
                {
                    escaped = true;
                }
                else if (c == '"')
                {
                    inString = false;
                }

                continue;
            }

            switch (c)
            {
                case '"':
                    inString = true;
                    break;
                case '{' or '[':
                    depth++;
                    break;
                case '}' or ']':
                    depth--;
                    if (depth == 0)
                    {
                        return i + 1;
                    }

                    if (depth < 0)
                    {
                        return -1;
                    }

                    break;
            }
        }

        return -1;
    }

    /// <summary>Parses <paramref name="json"/> as one JSON value, or returns null when it is not valid JSON.</summary>
    public static JsonDocument? TryParse(string json)
    {
        try
        {
            return JsonDocument.Parse(json);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Reads a call object <c>{"name": ..., "arguments": ...}</c> (<c>"parameters"</c> is accepted for
    /// <c>"arguments"</c>, as Llama 3 writes; a missing one means no arguments). False when it is not an object, has
    /// no string name, has both keys, or names a function not in <paramref name="functionNames"/>.
    /// </summary>
    public static bool TryReadCall(JsonElement call, IReadOnlySet<string>? functionNames, ToolCallFormat format, List<ParsedToolCall> calls)
    {
        if (call.ValueKind != JsonValueKind.Object
            || !call.TryGetProperty("name", out var nameElement)
            || nameElement.ValueKind != JsonValueKind.String)
        {
            return false;
        }

        var hasArguments = call.TryGetProperty("arguments", out var arguments);
        var hasParameters = call.TryGetProperty("parameters", out var parameters);
        if (hasArguments && hasParameters)
        {
            return false;
        }

        return TryAddCall(nameElement.GetString()!, hasArguments ? arguments : parameters, functionNames, format, calls);
    }

    /// <summary>Adds a call named <paramref name="name"/> unless the name is empty or undeclared.</summary>
    public static bool TryAddCall(string name, JsonElement arguments, IReadOnlySet<string>? functionNames, ToolCallFormat format, List<ParsedToolCall> calls)
    {
        if (name.Length == 0 || (functionNames is not null && !functionNames.Contains(name)))
        {
            return false;
        }

        calls.Add(new ParsedToolCall(ToolCallIds.New(format), name, ArgumentsToString(arguments)));
        return true;
    }

    /// <summary>
    /// OpenAI's <c>function.arguments</c> string for a parsed arguments value: a string is taken as is (the model
    /// already wrote JSON text), an absent value or null is <c>{}</c>, anything else is written compactly.
    /// </summary>
    public static string ArgumentsToString(JsonElement arguments)
    {
        switch (arguments.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                return "{}";
            case JsonValueKind.String:
                return arguments.GetString()!;
            default:
                using (var stream = new MemoryStream())
                {
                    using (var writer = new Utf8JsonWriter(stream, CompactOptions))
                    {
                        arguments.WriteTo(writer);
                    }

                    return System.Text.Encoding.UTF8.GetString(stream.GetBuffer(), 0, (int)stream.Length);
                }
        }
    }
}
