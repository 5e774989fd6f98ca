// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;

namespace InferenceServer.OpenAi;

/// <summary>
/// Typed, validating access to the fields of a JSON request body. Every failure is a
/// <see cref="RequestValidationException"/> naming the field, so that wrong types, out-of-range numbers and nulls
/// become 400s rather than exceptions deeper in.
/// </summary>
internal readonly struct JsonRequestReader
{
    private readonly JsonElement _root;
    private readonly string? _path;

    /// <summary>Wraps <paramref name="root"/>, which must be a JSON object.</summary>
    public JsonRequestReader(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new RequestValidationException(null, $"The request body must be a JSON object, not {Describe(root)}.");
        }

        _root = root;
    }

    /// <summary>Wraps the nested object <paramref name="root"/> found at <paramref name="path"/>; errors name <c>path.field</c>.</summary>
    public JsonRequestReader(JsonElement root, string path)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new RequestValidationException(path, $"'{path}' must be an object, not {Describe(root)}.");
        }

        _root = root;
        _path = path;
    }

    /// <summary>The properties of the wrapped object.</summary>
    public JsonElement.ObjectEnumerator Properties => _root.EnumerateObject();

    /// <summary>The raw element of <paramref name="name"/>, or false when absent or null.</summary>
    public bool TryGet(string name, out JsonElement value)
        => _root.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    /// <summary>The full name of field <paramref name="name"/>, with this object's path.</summary>
    public string Name(string name) => _path is null ? name : _path + "." + name;

    /// <summary>An optional string.</summary>
    public string? String(string name)
    {
        if (!TryGet(name, out var value))
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : throw new RequestValidationException(Name(name), $"'{Name(name)}' must be a string, not {Describe(value)}.");
    }

    /// <summary>An optional boolean.</summary>
    public bool? Bool(string name)
    {
        if (!TryGet(name, out var value))
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new RequestValidationException(Name(name), $"'{Name(name)}' must be a boolean, not {Describe(value)}."),
        };
    }

    /// <summary>An optional integer in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public long? Integer(string name, long min, long max)
    {
        if (!TryGet(name, out var value))
        {
            return null;
        }

        return ToInteger(value, Name(name), min, max);
    }

    /// <summary>An optional number in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public double? Number(string name, double min, double max)
    {
        if (!TryGet(name, out var value))
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number)
        {
            throw new RequestValidationException(Name(name), $"'{Name(name)}' must be a number, not {Describe(value)}.");
        }

        if (!value.TryGetDouble(out var number) || !double.IsFinite(number))
        {
            throw new RequestValidationException(Name(name), $"'{Name(name)}' must be a finite number between {min} and {max}; got {Quote(value)}.");
        }

        if (number < min || number > max)
        {
            throw new RequestValidationException(Name(name), $"'{Name(name)}' must be between {min} and {max}; got {number}.");
        }

        return number;
    }

    /// <summary>An optional string or array of strings (as OpenAI's <c>stop</c>).</summary>
    public IReadOnlyList<string>? StringOrStrings(string name, int maxCount)
    {
        if (!TryGet(name, out var value))
        {
            return null;
        }

        if (value.ValueKind == JsonValueKind.String)
        {
            return [value.GetString()!];
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new RequestValidationException(Name(name), $"'{Name(name)}' must be a string or an array of strings, not {Describe(value)}.");
        }

        var list = new List<string>();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                throw new RequestValidationException(Name(name), $"'{Name(name)}' must hold only strings, found {Describe(item)}.");
            }

            list.Add(item.GetString()!);
        }

        return list.Count <= maxCount
            ? list
            : throw new RequestValidationException(Name(name), $"'{Name(name)}' may hold at most {maxCount} entries; got {list.Count}.");
    }

    /// <summary>An optional array of integers in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public IReadOnlyList<int>? Integers(string name, int min, int max)
    {
        if (!TryGet(name, out var value))
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new RequestValidationException(Name(name), $"'{Name(name)}' must be an array of integers, not {Describe(value)}.");
        }

        var list = new List<int>();
        foreach (var item in value.EnumerateArray())
        {
            list.Add((int)ToInteger(item, Name(name), min, max));
        }

        return list;
    }

    /// <summary>An integer element, named <paramref name="name"/> in errors.</summary>
    public static long ToInteger(JsonElement value, string name, long min, long max)
    {
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var number))
        {
            // 2.0 is an integer in JSON Schema terms; accept exact integral doubles within range. (double)long.MaxValue
            // is 2^63, which is out of long's range, hence the strict upper bound.
            if (value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var d) && double.IsFinite(d) && Math.Floor(d) == d && d >= min && d <= max && d < TwoToThe63)
            {
                return (long)d;
            }

            if (value.ValueKind == JsonValueKind.Number)
            {
                // A fraction, or an integer too large for any field: say which, in the field's terms.
                throw new RequestValidationException(name, value.TryGetDouble(out var n) && double.IsFinite(n) && Math.Floor(n) == n
                    ? $"'{name}' must be between {min} and {max}; got {Quote(value)}."
                    : $"'{name}' must be an integer between {min} and {max}; got {Quote(value)}.");
            }

            throw new RequestValidationException(name, $"'{name}' must be an integer, not {Describe(value)}.");
        }

        if (number < min || number > max)
        {
            throw new RequestValidationException(name, $"'{name}' must be between {min} and {max}; got {number}.");
        }

        return number;
    }

    private const double TwoToThe63 = 9223372036854775808.0;

    /// <summary>A number's JSON text for an error message, shortened past 40 characters.</summary>
    public static string Quote(JsonElement value)
    {
        var text = value.GetRawText();
        return text.Length <= 40 ? text : string.Concat(text.AsSpan(0, 40), "...");
    }

    /// <summary>Describes a JSON value's kind for error messages.</summary>
    public static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };
}
