// Licensed under the MIT License. See LICENSE in the repository root.

using System.Globalization;
using System.Text;
using System.Text.Json;

namespace InferenceServer.Templating.Internal;

/// <summary>
/// JSON in and out of the value model: <see cref="FromElement"/> turns request JSON into dicts (key order kept),
/// lists, strings, ints, floats, bools and None, as Python's <c>json.loads</c> would; <see cref="Dumps"/> is Python's
/// <c>json.dumps</c> with transformers' <c>tojson</c> defaults (<c>ensure_ascii=False</c>, separators <c>", "</c>
/// and <c>": "</c>, or <c>","</c> and newlines with <c>indent</c>).
/// </summary>
internal static class PyJson
{
    private const int MaxDepth = 128;

    /// <summary>Converts a System.Text.Json value into template values.</summary>
    public static object? FromElement(JsonElement element, int depth = 0)
    {
        if (depth > MaxDepth)
        {
            throw ChatTemplateException.Limit($"JSON nested deeper than {MaxDepth} levels");
        }

        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var dict = new PyDict();
                foreach (JsonProperty property in element.EnumerateObject())
                {
                    dict.Set(property.Name, FromElement(property.Value, depth + 1));
                }

                return dict;
            case JsonValueKind.Array:
                var items = new List<object?>(element.GetArrayLength());
                foreach (JsonElement item in element.EnumerateArray())
                {
                    items.Add(FromElement(item, depth + 1));
                }

                return new PyList(items);
            case JsonValueKind.String:
                return element.GetString();
            case JsonValueKind.Number:
                string raw = element.GetRawText();
                if (raw.AsSpan().IndexOfAny('.', 'e', 'E') < 0 && element.TryGetInt64(out long l))
                {
                    return l;
                }

                return element.TryGetDouble(out double d) ? d : double.Parse(raw, System.Globalization.NumberStyles.Float, CultureInfo.InvariantCulture);
            case JsonValueKind.True:
                return true;
            case JsonValueKind.False:
                return false;
            default:
                return null;
        }
    }

    /// <summary>Python's <c>json.dumps(value, ensure_ascii, indent, separators, sort_keys)</c>.</summary>
    /// <param name="value">The value to serialize.</param>
    /// <param name="indent">Null for one line; else the indentation string of each level (an int indent as spaces).</param>
    /// <param name="itemSeparator">Null for the default (<c>", "</c>, or <c>","</c> with an indent).</param>
    /// <param name="keySeparator">Null for the default <c>": "</c>.</param>
    /// <param name="sortKeys">Whether to sort dict keys.</param>
    /// <param name="ensureAscii">Whether to escape non-ASCII characters as <c>\uXXXX</c>.</param>
    public static string Dumps(object? value, string? indent = null, string? itemSeparator = null, string? keySeparator = null, bool sortKeys = false, bool ensureAscii = false)
    {
        var sb = new StringBuilder();
        var writer = new Writer(sb, indent, itemSeparator ?? (indent is null ? ", " : ","), keySeparator ?? ": ", sortKeys, ensureAscii);
        writer.Write(value, 0);
        return sb.ToString();
    }

    /// <summary>Appends <paramref name="s"/> as a JSON string literal.</summary>
    public static void AppendString(StringBuilder sb, string s, bool ensureAscii)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"':
                    sb.Append("\\\"");
                    break;
                case '\\':
                    sb.Append("\\\\");
                    break;
                case '\n':
                    sb.Append("\\n");
                    break;
                case '\r':
                    sb.Append("\\r");
                    break;
                case '\t':
                    sb.Append("\\t");
                    break;
                case '\b':
                    sb.Append("\\b");
                    break;
                case '\f':
                    sb.Append("\\f");
                    break;
                default:
                    if (c < 0x20 || (ensureAscii && c > 0x7e))
                    {
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        sb.Append('"');
    }

    private sealed class Writer(StringBuilder sb, string? indent, string itemSeparator, string keySeparator, bool sortKeys, bool ensureAscii)
    {
        public void Write(object? value, int depth)
        {
            if (depth > MaxDepth)
            {
                throw ChatTemplateException.Limit($"value nested deeper than {MaxDepth} levels in tojson");
            }

            switch (value)
            {
                case null:
                    sb.Append("null");
                    break;
                case bool b:
                    sb.Append(b ? "true" : "false");
                    break;
                case long l:
                    sb.Append(l.ToString(CultureInfo.InvariantCulture));
                    break;
                case double d:
                    sb.Append(FloatText(d));
                    break;
                case string s:
                    AppendString(sb, s, ensureAscii);
                    break;
                case PyList list:
                    if (list.Count == 0)
                    {
                        sb.Append("[]");
                        break;
                    }

                    sb.Append('[');
                    for (int i = 0; i < list.Count; i++)
                    {
                        Separate(i, depth);
                        Write(list[i], depth + 1);
                    }

                    Close(depth);
                    sb.Append(']');
                    break;
                case PyDict dict:
                    WriteDict(dict, depth);
                    break;
                default:
                    throw ChatTemplateException.Runtime($"TypeError: Object of type {PyFormat.TypeName(value)} is not JSON serializable");
            }
        }

        private void WriteDict(PyDict dict, int depth)
        {
            if (dict.Count == 0)
            {
                sb.Append("{}");
                return;
            }

            var order = new int[dict.Count];
            for (int i = 0; i < order.Length; i++)
            {
                order[i] = i;
            }

            if (sortKeys)
            {
                try
                {
                    Array.Sort(order, (x, y) => PyOps.Compare(dict.KeyAt(x), dict.KeyAt(y), "<"));
                }
                catch (InvalidOperationException ex) when (ex.InnerException is ChatTemplateException inner)
                {
                    throw inner;
                }
            }

            sb.Append('{');
            for (int i = 0; i < order.Length; i++)
            {
                Separate(i, depth);
                object? key = dict.KeyAt(order[i]);
                string keyText = key switch
                {
                    string s => s,
                    null => "null",
                    bool b => b ? "true" : "false",
                    long l => l.ToString(CultureInfo.InvariantCulture),
                    double d => FloatText(d),
                    _ => throw ChatTemplateException.Runtime($"TypeError: keys must be str, int, float, bool or None, not {PyFormat.TypeName(key)}"),
                };
                AppendString(sb, keyText, ensureAscii);
                sb.Append(keySeparator);
                Write(dict.ValueAt(order[i]), depth + 1);
            }

            Close(depth);
            sb.Append('}');
        }

        private void Separate(int index, int depth)
        {
            if (index > 0)
            {
                sb.Append(itemSeparator);
            }

            if (indent is not null)
            {
                sb.Append('\n');
                for (int i = 0; i <= depth; i++)
                {
                    sb.Append(indent);
                }
            }
        }

        private void Close(int depth)
        {
            if (indent is not null)
            {
                sb.Append('\n');
                for (int i = 0; i < depth; i++)
                {
                    sb.Append(indent);
                }
            }
        }

        private static string FloatText(double d)
            => double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : PyFormat.FloatRepr(d);
    }
}
