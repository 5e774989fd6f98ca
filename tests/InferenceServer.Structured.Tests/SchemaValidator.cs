// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text.Json;

namespace InferenceServer.Structured.Tests;

/// <summary>
/// An independent validator of the supported schema subset, with the grammar's documented defaults (declared
/// properties in order; absent additionalProperties is false beside declared properties; strict makes all required).
/// Returns the first violation, or null.
/// </summary>
internal static class SchemaValidator
{
    public static string? Validate(JsonElement value, JsonElement schema, bool strict) => Check(value, schema, schema, strict, "$");

    private static string? Check(JsonElement value, JsonElement schema, JsonElement root, bool strict, string at)
    {
        if (schema.ValueKind == JsonValueKind.True)
        {
            return null;
        }

        if (schema.TryGetProperty("$ref", out JsonElement reference))
        {
            return Check(value, Resolve(root, reference.GetString()!), root, strict, at);
        }

        if (schema.TryGetProperty("allOf", out JsonElement allOf))
        {
            return Check(value, allOf[0], root, strict, at);
        }

        foreach (string combinator in new[] { "anyOf", "oneOf" })
        {
            if (schema.TryGetProperty(combinator, out JsonElement alternatives))
            {
                foreach (JsonElement alternative in alternatives.EnumerateArray())
                {
                    if (Check(value, alternative, root, strict, at) is null)
                    {
                        return null;
                    }
                }

                return $"{at}: matches no {combinator} alternative";
            }
        }

        if (schema.TryGetProperty("enum", out JsonElement values) || schema.TryGetProperty("const", out _))
        {
            IEnumerable<JsonElement> allowed = schema.TryGetProperty("const", out JsonElement single) ? [single] : values.EnumerateArray();
            return allowed.Any(v => JsonElement.DeepEquals(v, value)) ? null : $"{at}: not one of the enum values";
        }

        List<string> types = schema.TryGetProperty("type", out JsonElement type)
            ? type.ValueKind == JsonValueKind.String ? [type.GetString()!] : type.EnumerateArray().Select(t => t.GetString()!).ToList()
            : [];
        if (types.Count == 0)
        {
            if (schema.TryGetProperty("properties", out _) || schema.TryGetProperty("additionalProperties", out _))
            {
                types.Add("object");
            }
            else if (schema.TryGetProperty("items", out _) || schema.TryGetProperty("prefixItems", out _))
            {
                types.Add("array");
            }
            else
            {
                return null;
            }
        }

        string? firstError = null;
        foreach (string t in types)
        {
            string? error = CheckType(value, t, schema, root, strict, at);
            if (error is null)
            {
                return null;
            }

            firstError ??= error;
        }

        return firstError;
    }

    private static string? CheckType(JsonElement value, string type, JsonElement schema, JsonElement root, bool strict, string at)
    {
        switch (type)
        {
            case "null":
                return value.ValueKind == JsonValueKind.Null ? null : $"{at}: not null";
            case "boolean":
                return value.ValueKind is JsonValueKind.True or JsonValueKind.False ? null : $"{at}: not a boolean";
            case "number":
                return value.ValueKind == JsonValueKind.Number ? null : $"{at}: not a number";
            case "integer":
                if (value.ValueKind != JsonValueKind.Number || value.GetRawText().AsSpan().ContainsAny(".eE"))
                {
                    return $"{at}: not an integer";
                }

                bool bounded = schema.TryGetProperty("minimum", out _) || schema.TryGetProperty("maximum", out _)
                    || schema.TryGetProperty("exclusiveMinimum", out _) || schema.TryGetProperty("exclusiveMaximum", out _);
                if (!bounded)
                {
                    return null;
                }

                decimal number = value.GetDecimal();
                bool inRange = (!schema.TryGetProperty("minimum", out JsonElement minimum) || number >= minimum.GetDecimal())
                    && (!schema.TryGetProperty("maximum", out JsonElement maximum) || number <= maximum.GetDecimal())
                    && (!schema.TryGetProperty("exclusiveMinimum", out JsonElement above) || number > above.GetDecimal())
                    && (!schema.TryGetProperty("exclusiveMaximum", out JsonElement below) || number < below.GetDecimal());
                return inRange ? null : $"{at}: out of the integer bounds";
            case "string":
                if (value.ValueKind != JsonValueKind.String)
                {
                    return $"{at}: not a string";
                }

                int codePoints = value.GetString()!.EnumerateRunes().Count();
                if (schema.TryGetProperty("minLength", out JsonElement min) && codePoints < min.GetInt32())
                {
                    return $"{at}: shorter than minLength";
                }

                if (schema.TryGetProperty("maxLength", out JsonElement max) && codePoints > max.GetInt32())
                {
                    return $"{at}: longer than maxLength";
                }

                return null;
            case "array":
                return CheckArray(value, schema, root, strict, at);
            default:
                return CheckObject(value, schema, root, strict, at);
        }
    }

    private static string? CheckArray(JsonElement value, JsonElement schema, JsonElement root, bool strict, string at)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            return $"{at}: not an array";
        }

        int count = value.GetArrayLength();
        if (schema.TryGetProperty("minItems", out JsonElement min) && count < min.GetInt32())
        {
            return $"{at}: fewer than minItems";
        }

        if (schema.TryGetProperty("maxItems", out JsonElement max) && count > max.GetInt32())
        {
            return $"{at}: more than maxItems";
        }

        int prefix = schema.TryGetProperty("prefixItems", out JsonElement prefixItems) ? prefixItems.GetArrayLength() : 0;
        for (int i = 0; i < count; i++)
        {
            JsonElement itemSchema;
            if (i < prefix)
            {
                itemSchema = prefixItems[i];
            }
            else if (!schema.TryGetProperty("items", out itemSchema))
            {
                continue;
            }

            if (itemSchema.ValueKind == JsonValueKind.False)
            {
                return $"{at}: more items than prefixItems";
            }

            if (Check(value[i], itemSchema, root, strict, $"{at}[{i}]") is string error)
            {
                return error;
            }
        }

        return null;
    }

    private static string? CheckObject(JsonElement value, JsonElement schema, JsonElement root, bool strict, string at)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            return $"{at}: not an object";
        }

        var declared = schema.TryGetProperty("properties", out JsonElement properties)
            ? properties.EnumerateObject().Select(p => p.Name).ToList()
            : [];
        var required = strict ? declared.ToHashSet()
            : schema.TryGetProperty("required", out JsonElement r) ? r.EnumerateArray().Select(e => e.GetString()!).ToHashSet() : [];
        bool hasAdditional = schema.TryGetProperty("additionalProperties", out JsonElement additional);
        int lastIndex = -1;
        var seen = new HashSet<string>();
        foreach (JsonProperty property in value.EnumerateObject())
        {
            int index = declared.IndexOf(property.Name);
            if (index >= 0)
            {
                if (index <= lastIndex)
                {
                    return $"{at}.{property.Name}: out of declaration order or repeated";
                }

                lastIndex = index;
                seen.Add(property.Name);
                if (Check(property.Value, properties.GetProperty(property.Name), root, strict, $"{at}.{property.Name}") is string error)
                {
                    return error;
                }
            }
            else if (!hasAdditional && declared.Count > 0 || hasAdditional && additional.ValueKind == JsonValueKind.False)
            {
                return $"{at}.{property.Name}: not a declared property";
            }
            else if (hasAdditional && Check(property.Value, additional, root, strict, $"{at}.{property.Name}") is string error)
            {
                return error;
            }
        }

        foreach (string name in required)
        {
            if (!seen.Contains(name))
            {
                return $"{at}: missing required '{name}'";
            }
        }

        return null;
    }

    private static JsonElement Resolve(JsonElement root, string reference)
    {
        JsonElement target = root;
        foreach (string segment in reference.TrimStart('#').Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            target = target.GetProperty(segment);
        }

        return target;
    }
}
