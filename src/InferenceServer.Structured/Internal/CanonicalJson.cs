// Licensed under the MIT License. See LICENSE in the repository root.

using System.Globalization;
using System.Text;
using System.Text.Json;

namespace InferenceServer.Structured.Internal;

/// <summary>
/// The one serialization of a fixed value (enum and const values, property names) that the grammar accepts: compact
/// (no whitespace), strings with only the escapes JSON requires (<c>\"</c>, <c>\\</c>, <c>\b \f \n \r \t</c>, other
/// control characters as <c>\u00XX</c>) and everything else as raw UTF-8, numbers exactly as written in the schema.
/// </summary>
internal static class CanonicalJson
{
    /// <summary>Serializes <paramref name="value"/>.</summary>
    /// <param name="value">A JSON value.</param>
    /// <param name="maxDepth">How deeply the value may nest (the recursion's bound).</param>
    /// <param name="path">Where the value is in the schema, for the error.</param>
    /// <exception cref="SchemaLimitExceededException">The value nests deeper than <paramref name="maxDepth"/>.</exception>
    public static byte[] Serialize(JsonElement value, int maxDepth, string path)
    {
        var text = new StringBuilder();
        Write(value, text, 0, maxDepth, path);
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    /// <summary>Serializes a string, with its quotes.</summary>
    /// <param name="value">The string.</param>
    public static byte[] QuotedString(string value)
    {
        var text = new StringBuilder(value.Length + 2);
        WriteString(value, text);
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    private static void Write(JsonElement value, StringBuilder text, int depth, int maxDepth, string path)
    {
        if (depth >= maxDepth && value.ValueKind is JsonValueKind.Object or JsonValueKind.Array)
        {
            throw CompileBudget.Exceeded(nameof(SchemaLimits.MaxNesting), maxDepth, $"an enum/const value at '{path}' nests deeper.");
        }

        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                text.Append('{');
                bool first = true;
                foreach (JsonProperty property in value.EnumerateObject())
                {
                    if (!first)
                    {
                        text.Append(',');
                    }

                    first = false;
                    WriteString(property.Name, text);
                    text.Append(':');
                    Write(property.Value, text, depth + 1, maxDepth, path);
                }

                text.Append('}');
                break;
            case JsonValueKind.Array:
                text.Append('[');
                bool firstItem = true;
                foreach (JsonElement item in value.EnumerateArray())
                {
                    if (!firstItem)
                    {
                        text.Append(',');
                    }

                    firstItem = false;
                    Write(item, text, depth + 1, maxDepth, path);
                }

                text.Append(']');
                break;
            case JsonValueKind.String:
                WriteString(value.GetString()!, text);
                break;
            default:
                text.Append(value.GetRawText());
                break;
        }
    }

    private static void WriteString(string value, StringBuilder text)
    {
        text.Append('"');
        foreach (char c in value)
        {
            switch (c)
            {
                case '"':
                    text.Append("\\\"");
                    break;
                case '\\':
                    text.Append("\\\\");
                    break;
                case '\b':
                    text.Append("\\b");
                    break;
                case '\f':
                    text.Append("\\f");
                    break;
                case '\n':
                    text.Append("\\n");
                    break;
                case '\r':
                    text.Append("\\r");
                    break;
                case '\t':
                    text.Append("\\t");
                    break;
                case < ' ':
                    text.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    break;
                default:
                    text.Append(c);
                    break;
            }
        }

        text.Append('"');
    }
}
