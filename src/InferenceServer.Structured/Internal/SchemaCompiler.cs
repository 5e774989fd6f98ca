// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text;
using System.Text.Json;

namespace InferenceServer.Structured.Internal;

/// <summary>
/// Compiles a JSON schema into <see cref="GrammarNode"/>s. Every keyword is either enforced, an annotation (ignored),
/// or refused with <see cref="SchemaNotSupportedException"/>; malformed schemas get <see cref="ArgumentException"/>.
/// After compiling, nodes that accept no finite value are pruned where optional (so the matcher never walks into a
/// dead end) and the schema is refused when the root is one of them.
/// </summary>
internal sealed class SchemaCompiler
{
    private static readonly HashSet<string> Annotations = new(StringComparer.Ordinal)
    {
        "title", "description", "default", "examples", "$comment", "$schema", "$id", "$anchor", "deprecated",
        "readOnly", "writeOnly", "$defs", "definitions", "contentEncoding", "contentMediaType",
    };

    private static readonly Dictionary<string, string> Unsupported = new(StringComparer.Ordinal)
    {
        ["pattern"] = "regular expressions are not enforced; use 'enum' or describe the format in 'description'",
        ["format"] = "string formats are not enforced; describe the format in 'description'",
        ["multipleOf"] = "numeric constraints are not enforced",
        ["patternProperties"] = "regular expressions are not enforced",
        ["propertyNames"] = "constraints on property names are not enforced",
        ["minProperties"] = "property counts are not enforced",
        ["maxProperties"] = "property counts are not enforced",
        ["dependentRequired"] = "conditional schemas are not enforced",
        ["dependentSchemas"] = "conditional schemas are not enforced",
        ["dependencies"] = "conditional schemas are not enforced",
        ["if"] = "conditional schemas are not enforced",
        ["then"] = "conditional schemas are not enforced",
        ["else"] = "conditional schemas are not enforced",
        ["not"] = "negated schemas are not enforced",
        ["contains"] = "'contains' is not enforced",
        ["minContains"] = "'contains' is not enforced",
        ["maxContains"] = "'contains' is not enforced",
        ["unevaluatedProperties"] = "use 'additionalProperties'",
        ["unevaluatedItems"] = "use 'items'",
        ["additionalItems"] = "use 'prefixItems' and 'items'",
        ["$dynamicRef"] = "only '$ref' to '#', '#/$defs/...' or '#/definitions/...' is supported",
        ["$recursiveRef"] = "only '$ref' to '#', '#/$defs/...' or '#/definitions/...' is supported",
        ["$dynamicAnchor"] = "only '$ref' to '#', '#/$defs/...' or '#/definitions/...' is supported",
        ["$recursiveAnchor"] = "only '$ref' to '#', '#/$defs/...' or '#/definitions/...' is supported",
    };

    private static readonly string[] ObjectKeywords = ["properties", "required", "additionalProperties"];
    private static readonly string[] ArrayKeywords = ["items", "prefixItems", "minItems", "maxItems", "uniqueItems"];
    private static readonly string[] StringKeywords = ["minLength", "maxLength"];
    private static readonly string[] IntegerKeywords = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"];
    private static readonly string[] CombinatorKeywords = ["$ref", "allOf", "anyOf", "oneOf", "enum", "const", "type"];

    // A plain string node, to compute the string phase after each declared key's prefix.
    private static readonly GrammarNode PlainString = new(NodeKind.String) { MaxLength = int.MaxValue };

    private readonly JsonElement _root;
    private readonly bool _strict;
    private readonly List<GrammarNode> _nodes = [];
    private readonly Dictionary<string, int> _refs = new(StringComparer.Ordinal);
    private int _any = -1;
    private int _anyObject = -1;

    private SchemaCompiler(JsonElement root, bool strict)
    {
        _root = root;
        _strict = strict;
        _nodes.Add(new GrammarNode(NodeKind.Root));
    }

    /// <summary>Compiles a schema.</summary>
    /// <param name="schema">The schema (an object or a boolean).</param>
    /// <param name="strict">OpenAI's <c>strict</c>: every declared property is required.</param>
    /// <returns>The nodes; node 0 is the root.</returns>
    public static GrammarNode[] Compile(JsonElement schema, bool strict)
    {
        var compiler = new SchemaCompiler(schema, strict);
        compiler._nodes[0].Value = compiler.Ref("#", "#");
        return compiler.Finish();
    }

    /// <summary>Compiles the grammar of any JSON object.</summary>
    /// <returns>The nodes; node 0 is the root.</returns>
    public static GrammarNode[] AnyObject()
    {
        var compiler = new SchemaCompiler(default, strict: false);
        compiler.Any();
        compiler._nodes[0].Value = compiler._anyObject;
        return compiler.Finish();
    }

    private static string Child(string path, string segment)
        => path + "/" + segment.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);

    private static bool Contains(string[] keywords, string name) => Array.IndexOf(keywords, name) >= 0;

    private static int NonNegativeInteger(JsonElement schema, string keyword, string path, int fallback)
    {
        if (!schema.TryGetProperty(keyword, out JsonElement value))
        {
            return fallback;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int result) || result < 0)
        {
            throw new ArgumentException($"JSON schema keyword '{keyword}' at '{path}' must be a non-negative integer.");
        }

        return result;
    }

    private static bool MatchesType(JsonElement value, string type) => type switch
    {
        "object" => value.ValueKind == JsonValueKind.Object,
        "array" => value.ValueKind == JsonValueKind.Array,
        "string" => value.ValueKind == JsonValueKind.String,
        "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "null" => value.ValueKind == JsonValueKind.Null,
        "number" => value.ValueKind == JsonValueKind.Number,
        "integer" => value.ValueKind == JsonValueKind.Number
            && (value.TryGetDecimal(out decimal d) ? d == decimal.Truncate(d) : value.GetDouble() == Math.Floor(value.GetDouble())),
        _ => false,
    };

    private int Add(GrammarNode node)
    {
        _nodes.Add(node);
        return _nodes.Count - 1;
    }

    private int Compile(JsonElement schema, string path)
    {
        switch (schema.ValueKind)
        {
            case JsonValueKind.True:
                return Any();
            case JsonValueKind.False:
                throw new ArgumentException($"The JSON schema at '{path}' is 'false': no value matches it.");
            case JsonValueKind.Object:
                break;
            default:
                throw new ArgumentException($"The JSON schema at '{path}' must be an object or a boolean, not {schema.ValueKind}.");
        }

        var keywords = new List<string>();
        foreach (JsonProperty property in schema.EnumerateObject())
        {
            string name = property.Name;
            if (Annotations.Contains(name) || name.StartsWith("x-", StringComparison.Ordinal))
            {
                continue;
            }

            if (Unsupported.TryGetValue(name, out string? detail))
            {
                throw new SchemaNotSupportedException(name, path, detail);
            }

            if (!Contains(ObjectKeywords, name) && !Contains(ArrayKeywords, name) && !Contains(StringKeywords, name)
                && !Contains(IntegerKeywords, name) && !Contains(CombinatorKeywords, name))
            {
                throw new SchemaNotSupportedException(name, path, "unknown keyword; it would not be enforced");
            }

            if (name == "uniqueItems")
            {
                // false is the default and constrains nothing.
                if (property.Value.ValueKind != JsonValueKind.False)
                {
                    throw new SchemaNotSupportedException(name, path, "unique items are not enforced");
                }

                continue;
            }

            keywords.Add(name);
        }

        if (schema.TryGetProperty("$ref", out JsonElement reference))
        {
            Alone(keywords, "$ref", path);
            if (reference.ValueKind != JsonValueKind.String)
            {
                throw new ArgumentException($"JSON schema keyword '$ref' at '{path}' must be a string.");
            }

            return Ref(reference.GetString()!, path);
        }

        if (schema.TryGetProperty("allOf", out JsonElement allOf))
        {
            Alone(keywords, "allOf", path);
            if (allOf.ValueKind != JsonValueKind.Array || allOf.GetArrayLength() != 1)
            {
                throw new SchemaNotSupportedException("allOf", path, "only 'allOf' with exactly one schema is supported");
            }

            return Compile(allOf[0], path + "/allOf/0");
        }

        foreach (string combinator in (string[])["anyOf", "oneOf"])
        {
            if (schema.TryGetProperty(combinator, out JsonElement alternatives))
            {
                // oneOf is matched as anyOf: exclusivity is not checked.
                Alone(keywords, combinator, path);
                if (alternatives.ValueKind != JsonValueKind.Array || alternatives.GetArrayLength() == 0)
                {
                    throw new ArgumentException($"JSON schema keyword '{combinator}' at '{path}' must be a non-empty array of schemas.");
                }

                var union = new GrammarNode(NodeKind.Union);
                int id = Add(union);
                int[] nodes = new int[alternatives.GetArrayLength()];
                for (int i = 0; i < nodes.Length; i++)
                {
                    nodes[i] = Compile(alternatives[i], $"{path}/{combinator}/{i}");
                }

                union.Alternatives = nodes;
                return id;
            }
        }

        List<string> types = Types(schema, keywords, path);
        if (schema.TryGetProperty("enum", out _) || schema.TryGetProperty("const", out _))
        {
            return Literal(schema, keywords, types, path);
        }

        foreach (string keyword in keywords)
        {
            if (keyword == "type")
            {
                continue;
            }

            if (Contains(IntegerKeywords, keyword))
            {
                if (!types.Contains("integer") || types.Contains("number"))
                {
                    throw new SchemaNotSupportedException(keyword, path, "numeric bounds are enforced only with \"type\": \"integer\"");
                }

                continue;
            }

            bool applies = types.Count == 0
                || (types.Contains("object") && Contains(ObjectKeywords, keyword))
                || (types.Contains("array") && Contains(ArrayKeywords, keyword))
                || (types.Contains("string") && Contains(StringKeywords, keyword));
            if (!applies)
            {
                throw new SchemaNotSupportedException(keyword, path, $"it does not apply to type '{string.Join("', '", types)}'");
            }
        }

        if (types.Count == 0)
        {
            return Any();
        }

        if (types.Count == 1)
        {
            return TypeNode(schema, types[0], path);
        }

        var alternativesOfTypes = new GrammarNode(NodeKind.Union);
        int unionId = Add(alternativesOfTypes);
        int[] typeNodes = new int[types.Count];
        for (int i = 0; i < types.Count; i++)
        {
            typeNodes[i] = TypeNode(schema, types[i], path);
        }

        alternativesOfTypes.Alternatives = typeNodes;
        return unionId;
    }

    // The declared types, or those the keywords imply when 'type' is absent (none: any value).
    private static List<string> Types(JsonElement schema, List<string> keywords, string path)
    {
        var types = new List<string>();
        if (schema.TryGetProperty("type", out JsonElement type))
        {
            if (type.ValueKind == JsonValueKind.String)
            {
                types.Add(type.GetString()!);
            }
            else if (type.ValueKind == JsonValueKind.Array && type.GetArrayLength() > 0)
            {
                foreach (JsonElement item in type.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.String)
                    {
                        throw new ArgumentException($"JSON schema keyword 'type' at '{path}' must be a string or an array of strings.");
                    }

                    if (!types.Contains(item.GetString()!))
                    {
                        types.Add(item.GetString()!);
                    }
                }
            }
            else
            {
                throw new ArgumentException($"JSON schema keyword 'type' at '{path}' must be a string or a non-empty array of strings.");
            }

            foreach (string name in types)
            {
                if (name is not ("object" or "array" or "string" or "number" or "integer" or "boolean" or "null"))
                {
                    throw new ArgumentException($"JSON schema keyword 'type' at '{path}' has the unknown type '{name}'.");
                }
            }

            return types;
        }

        foreach (string keyword in keywords)
        {
            string? implied = Contains(ObjectKeywords, keyword) ? "object"
                : Contains(ArrayKeywords, keyword) ? "array"
                : Contains(StringKeywords, keyword) ? "string"
                : null;
            if (implied is not null && !types.Contains(implied))
            {
                types.Add(implied);
            }
        }

        return types;
    }

    // Refuses siblings of a keyword whose siblings are not merged ($ref, allOf, anyOf, oneOf).
    private static void Alone(List<string> keywords, string keyword, string path)
    {
        foreach (string other in keywords)
        {
            if (other != keyword)
            {
                throw new SchemaNotSupportedException(other, path, $"it cannot be combined with '{keyword}' in the same schema; move it inside");
            }
        }
    }

    private int TypeNode(JsonElement schema, string type, string path) => type switch
    {
        "object" => ObjectNode(schema, path),
        "array" => ArrayNode(schema, path),
        "string" => StringNode(schema, path),
        "number" => Add(new GrammarNode(NodeKind.Number)),
        "integer" => IntegerNode(schema, path),
        "boolean" => Add(new GrammarNode(NodeKind.Literal) { Literals = new LiteralTrie([Encoding.UTF8.GetBytes("true"), Encoding.UTF8.GetBytes("false")]) }),
        _ => Add(new GrammarNode(NodeKind.Literal) { Literals = new LiteralTrie([Encoding.UTF8.GetBytes("null")]) }),
    };

    private static void Bound(JsonElement schema, string keyword, string path, bool lower, bool exclusive, ref long bound)
    {
        if (!schema.TryGetProperty(keyword, out JsonElement value))
        {
            return;
        }

        if (value.ValueKind != JsonValueKind.Number)
        {
            throw new ArgumentException($"JSON schema keyword '{keyword}' at '{path}' must be a number.");
        }

        double x = value.GetDouble();
        if (Math.Abs(x) > ScalarSteps.MaxBound)
        {
            throw new SchemaNotSupportedException(keyword, path, $"integer bounds must lie within ±{ScalarSteps.MaxBound}");
        }

        // The integer bound: the least integer above (or at) a lower bound, the greatest below (or at) an upper one.
        long integer = lower
            ? (exclusive ? (long)Math.Floor(x) + 1 : (long)Math.Ceiling(x))
            : (exclusive ? (long)Math.Ceiling(x) - 1 : (long)Math.Floor(x));
        bound = lower ? Math.Max(bound, integer) : Math.Min(bound, integer);
    }

    private int IntegerNode(JsonElement schema, string path)
    {
        long minimum = long.MinValue;
        long maximum = long.MaxValue;
        Bound(schema, "minimum", path, lower: true, exclusive: false, ref minimum);
        Bound(schema, "exclusiveMinimum", path, lower: true, exclusive: true, ref minimum);
        Bound(schema, "maximum", path, lower: false, exclusive: false, ref maximum);
        Bound(schema, "exclusiveMaximum", path, lower: false, exclusive: true, ref maximum);
        if (minimum > maximum)
        {
            throw new ArgumentException($"JSON schema at '{path}' allows no integer between its minimum and maximum.");
        }

        return Add(new GrammarNode(NodeKind.Number) { IntegerOnly = true, Minimum = minimum, Maximum = maximum });
    }

    private int Literal(JsonElement schema, List<string> keywords, List<string> types, string path)
    {
        foreach (string keyword in keywords)
        {
            if (keyword is not ("enum" or "const" or "type"))
            {
                throw new SchemaNotSupportedException(keyword, path, "it cannot be combined with 'enum' or 'const'");
            }
        }

        var values = new List<JsonElement>();
        if (schema.TryGetProperty("enum", out JsonElement enumValues))
        {
            if (enumValues.ValueKind != JsonValueKind.Array || enumValues.GetArrayLength() == 0)
            {
                throw new ArgumentException($"JSON schema keyword 'enum' at '{path}' must be a non-empty array.");
            }

            values.AddRange(enumValues.EnumerateArray());
        }

        if (schema.TryGetProperty("const", out JsonElement constValue))
        {
            if (values.Count > 0)
            {
                throw new SchemaNotSupportedException("const", path, "it cannot be combined with 'enum'");
            }

            values.Add(constValue);
        }

        var serialized = new List<byte[]>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (JsonElement value in values)
        {
            bool matches = types.Count == 0;
            foreach (string type in types)
            {
                matches |= MatchesType(value, type);
            }

            byte[] bytes = CanonicalJson.Serialize(value);
            if (matches && seen.Add(Convert.ToBase64String(bytes)))
            {
                serialized.Add(bytes);
            }
        }

        if (serialized.Count == 0)
        {
            throw new ArgumentException($"No 'enum' or 'const' value at '{path}' has the declared 'type'.");
        }

        return Add(new GrammarNode(NodeKind.Literal) { Literals = new LiteralTrie(serialized) });
    }

    private int ObjectNode(JsonElement schema, string path)
    {
        var node = new GrammarNode(NodeKind.Object);
        int id = Add(node);
        var names = new List<string>();
        var values = new List<int>();
        if (schema.TryGetProperty("properties", out JsonElement properties))
        {
            if (properties.ValueKind != JsonValueKind.Object)
            {
                throw new ArgumentException($"JSON schema keyword 'properties' at '{path}' must be an object.");
            }

            foreach (JsonProperty property in properties.EnumerateObject())
            {
                if (names.Contains(property.Name))
                {
                    throw new ArgumentException($"JSON schema keyword 'properties' at '{path}' declares '{property.Name}' twice.");
                }

                names.Add(property.Name);
                values.Add(Compile(property.Value, Child(path + "/properties", property.Name)));
            }
        }

        bool[] required = new bool[names.Count];
        if (_strict)
        {
            Array.Fill(required, true);
        }

        if (schema.TryGetProperty("required", out JsonElement requiredNames))
        {
            if (requiredNames.ValueKind != JsonValueKind.Array)
            {
                throw new ArgumentException($"JSON schema keyword 'required' at '{path}' must be an array of strings.");
            }

            foreach (JsonElement name in requiredNames.EnumerateArray())
            {
                if (name.ValueKind != JsonValueKind.String)
                {
                    throw new ArgumentException($"JSON schema keyword 'required' at '{path}' must be an array of strings.");
                }

                int index = names.IndexOf(name.GetString()!);
                if (index < 0)
                {
                    throw new SchemaNotSupportedException(
                        "required", path, $"the required property '{name.GetString()}' is not declared in 'properties'");
                }

                required[index] = true;
            }
        }

        // Absent additionalProperties: none beside declared properties (OpenAI's strict-mode rule), but any when
        // none is declared, so that {"type": "object"} is any object as in JSON Schema.
        int additional = names.Count == 0 ? Any() : -1;
        if (schema.TryGetProperty("additionalProperties", out JsonElement additionalProperties))
        {
            additional = additionalProperties.ValueKind == JsonValueKind.False
                ? -1
                : Compile(additionalProperties, path + "/additionalProperties");
        }

        node.PropertyNames = new byte[names.Count][];
        for (int i = 0; i < names.Count; i++)
        {
            node.PropertyNames[i] = CanonicalJson.QuotedString(names[i]);
        }

        node.PropertyValues = [.. values];
        node.PropertyRequired = required;
        node.AdditionalValue = additional;
        if (additional >= 0)
        {
            // Beside declared names, extra keys have no escapes, so that no extra key can spell a declared name.
            node.ExtraKey = Add(new GrammarNode(NodeKind.String) { AllowEscapes = names.Count == 0 });
        }

        return id;
    }

    private int ArrayNode(JsonElement schema, string path)
    {
        var node = new GrammarNode(NodeKind.Array);
        int id = Add(node);
        if (schema.TryGetProperty("prefixItems", out JsonElement prefixItems))
        {
            if (prefixItems.ValueKind != JsonValueKind.Array)
            {
                throw new ArgumentException($"JSON schema keyword 'prefixItems' at '{path}' must be an array of schemas.");
            }

            int[] prefix = new int[prefixItems.GetArrayLength()];
            for (int i = 0; i < prefix.Length; i++)
            {
                prefix[i] = Compile(prefixItems[i], $"{path}/prefixItems/{i}");
            }

            node.PrefixItems = prefix;
        }

        if (schema.TryGetProperty("items", out JsonElement items))
        {
            if (items.ValueKind == JsonValueKind.Array)
            {
                throw new SchemaNotSupportedException("items", path, "the array form of 'items' is not supported; use 'prefixItems'");
            }

            node.Items = items.ValueKind == JsonValueKind.False ? -1 : Compile(items, path + "/items");
        }
        else
        {
            node.Items = Any();
        }

        node.MinItems = NonNegativeInteger(schema, "minItems", path, 0);
        node.MaxItems = NonNegativeInteger(schema, "maxItems", path, int.MaxValue);
        if (node.MinItems > node.MaxItems)
        {
            throw new ArgumentException($"JSON schema at '{path}' has 'minItems' greater than 'maxItems'.");
        }

        return id;
    }

    private int StringNode(JsonElement schema, string path)
    {
        var node = new GrammarNode(NodeKind.String)
        {
            MinLength = NonNegativeInteger(schema, "minLength", path, 0),
            MaxLength = NonNegativeInteger(schema, "maxLength", path, int.MaxValue),
        };
        if (node.MinLength > node.MaxLength)
        {
            throw new ArgumentException($"JSON schema at '{path}' has 'minLength' greater than 'maxLength'.");
        }

        return Add(node);
    }

    // Any JSON value; built once per grammar (its object and array refer back to it).
    private int Any()
    {
        if (_any >= 0)
        {
            return _any;
        }

        var union = new GrammarNode(NodeKind.Union);
        _any = Add(union);
        int key = Add(new GrammarNode(NodeKind.String));
        _anyObject = Add(new GrammarNode(NodeKind.Object) { AdditionalValue = _any, ExtraKey = key });
        int array = Add(new GrammarNode(NodeKind.Array) { Items = _any });
        int number = Add(new GrammarNode(NodeKind.Number));
        byte[][] literals = [Encoding.UTF8.GetBytes("true"), Encoding.UTF8.GetBytes("false"), Encoding.UTF8.GetBytes("null")];
        int literal = Add(new GrammarNode(NodeKind.Literal) { Literals = new LiteralTrie(literals) });
        union.Alternatives = [_anyObject, array, key, number, literal];
        return _any;
    }

    private int Ref(string reference, string path)
    {
        if (_refs.TryGetValue(reference, out int existing))
        {
            return existing;
        }

        if (!reference.StartsWith('#'))
        {
            throw new SchemaNotSupportedException("$ref", path, $"'{reference}' is not a reference inside the schema ('#', '#/$defs/...', '#/definitions/...')");
        }

        JsonElement target = _root;
        string pointer = reference[1..];
        if (pointer.Length > 0)
        {
            if (pointer[0] != '/')
            {
                throw new SchemaNotSupportedException("$ref", path, $"'{reference}' is not a JSON pointer (anchors are not supported)");
            }

            foreach (string rawSegment in pointer[1..].Split('/'))
            {
                string segment = Uri.UnescapeDataString(rawSegment).Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
                bool found = target.ValueKind switch
                {
                    JsonValueKind.Object => target.TryGetProperty(segment, out target),
                    JsonValueKind.Array => int.TryParse(segment, out int index) && index >= 0 && index < target.GetArrayLength()
                        && (target = target[index]).ValueKind != JsonValueKind.Undefined,
                    _ => false,
                };
                if (!found)
                {
                    throw new ArgumentException($"JSON schema keyword '$ref' at '{path}' refers to '{reference}', which does not exist.");
                }
            }
        }

        // A union of one alternative stands for the target while it compiles, so that recursion refers to it.
        var alias = new GrammarNode(NodeKind.Union);
        int id = Add(alias);
        _refs[reference] = id;
        alias.Alternatives = [Compile(target, reference)];
        return id;
    }

    private GrammarNode[] Finish()
    {
        GrammarNode[] nodes = [.. _nodes];
        CheckUnionCycles(nodes);
        bool[] productive = Productive(nodes);
        if (!productive[0])
        {
            throw new ArgumentException("The JSON schema accepts no finite document (its required parts recurse without end or are empty).");
        }

        foreach (GrammarNode node in nodes)
        {
            Prune(node, productive);
        }

        bool[] started = new bool[nodes.Length];
        for (int i = 0; i < nodes.Length; i++)
        {
            FillStartBytes(nodes, i, started);
        }

        foreach (GrammarNode node in nodes)
        {
            if (node.Kind == NodeKind.Object)
            {
                FinishObject(node);
            }
            else if (node.Kind == NodeKind.Array)
            {
                node.CountCap = node.MaxItems != int.MaxValue ? node.MaxItems : Math.Max(node.MinItems, node.PrefixItems.Length);
            }
            else if (node.Kind == NodeKind.String)
            {
                node.CountCap = node.MaxLength != int.MaxValue ? node.MaxLength : node.MinLength;
            }
        }

        return nodes;
    }

    // The first bytes of each node's values (unions: of their alternatives; they cannot cycle, CheckUnionCycles ran).
    private static void FillStartBytes(GrammarNode[] nodes, int index, bool[] done)
    {
        if (done[index])
        {
            return;
        }

        GrammarNode node = nodes[index];
        bool[] start = node.StartBytes;
        switch (node.Kind)
        {
            case NodeKind.Object:
                start['{'] = true;
                break;
            case NodeKind.Array:
                start['['] = true;
                break;
            case NodeKind.String:
                start['"'] = true;
                break;
            case NodeKind.Number:
                start['-'] = true;
                for (int digit = '0'; digit <= '9'; digit++)
                {
                    start[digit] = true;
                }

                break;
            case NodeKind.Literal:
                for (int i = 0; node.Literals!.ChildAt(0, i, out byte b) >= 0; i++)
                {
                    start[b] = true;
                }

                break;
            case NodeKind.Union:
                foreach (int alternative in node.Alternatives)
                {
                    FillStartBytes(nodes, alternative, done);
                    for (int b = 0; b < 256; b++)
                    {
                        start[b] |= nodes[alternative].StartBytes[b];
                    }
                }

                break;
        }

        done[index] = true;
    }

    // A union that reaches itself through unions only would expand forever without reading a byte.
    private static void CheckUnionCycles(GrammarNode[] nodes)
    {
        int[] color = new int[nodes.Length];
        for (int i = 0; i < nodes.Length; i++)
        {
            Visit(i);
        }

        void Visit(int i)
        {
            if (color[i] == 2 || nodes[i].Kind != NodeKind.Union)
            {
                return;
            }

            if (color[i] == 1)
            {
                throw new ArgumentException(
                    "The JSON schema refers to itself without consuming input (a '$ref' or 'anyOf' cycle that reaches no object or array).");
            }

            color[i] = 1;
            foreach (int alternative in nodes[i].Alternatives)
            {
                Visit(alternative);
            }

            color[i] = 2;
        }
    }

    // Which nodes accept at least one finite value (a least fixed point).
    private static bool[] Productive(GrammarNode[] nodes)
    {
        bool[] productive = new bool[nodes.Length];
        bool changed = true;
        while (changed)
        {
            changed = false;
            for (int i = 0; i < nodes.Length; i++)
            {
                if (!productive[i] && IsProductive(nodes[i], productive))
                {
                    productive[i] = true;
                    changed = true;
                }
            }
        }

        return productive;
    }

    private static bool IsProductive(GrammarNode node, bool[] productive)
    {
        switch (node.Kind)
        {
            case NodeKind.Root:
                return productive[node.Value];
            case NodeKind.Union:
                foreach (int alternative in node.Alternatives)
                {
                    if (productive[alternative])
                    {
                        return true;
                    }
                }

                return false;
            case NodeKind.Object:
                for (int j = 0; j < node.PropertyValues.Length; j++)
                {
                    if (node.PropertyRequired[j] && !productive[node.PropertyValues[j]])
                    {
                        return false;
                    }
                }

                return true;
            case NodeKind.Array:
                int needed = Math.Min(node.MinItems, node.PrefixItems.Length + 1);
                for (int k = 0; k < needed; k++)
                {
                    int item = k < node.PrefixItems.Length ? node.PrefixItems[k] : node.Items;
                    if (item < 0 || !productive[item])
                    {
                        return false;
                    }
                }

                return true;
            default:
                return true;
        }
    }

    // Removes what accepts no finite value from optional places, so that no allowed byte leads to a dead end.
    private static void Prune(GrammarNode node, bool[] productive)
    {
        switch (node.Kind)
        {
            case NodeKind.Union:
                node.Alternatives = Array.FindAll(node.Alternatives, a => productive[a]);
                break;
            case NodeKind.Object:
                node.PropertyEnabled = new bool[node.PropertyValues.Length];
                for (int j = 0; j < node.PropertyValues.Length; j++)
                {
                    node.PropertyEnabled[j] = productive[node.PropertyValues[j]];
                }

                if (node.AdditionalValue >= 0 && !productive[node.AdditionalValue])
                {
                    node.AdditionalValue = -1;
                }

                break;
            case NodeKind.Array:
                for (int k = 0; k < node.PrefixItems.Length; k++)
                {
                    if (!productive[node.PrefixItems[k]])
                    {
                        node.MaxItems = Math.Min(node.MaxItems, k);
                        break;
                    }
                }

                if (node.Items >= 0 && !productive[node.Items])
                {
                    node.Items = -1;
                }

                break;
        }
    }

    private static void FinishObject(GrammarNode node)
    {
        int count = node.PropertyValues.Length;
        int[] firstRequired = new int[count + 1];
        firstRequired[count] = count;
        for (int j = count - 1; j >= 0; j--)
        {
            firstRequired[j] = node.PropertyRequired[j] ? j : firstRequired[j + 1];
        }

        node.FirstRequiredFrom = firstRequired;
        if (count == 0)
        {
            return;
        }

        var keys = new LiteralTrie(node.PropertyNames);
        node.Keys = keys;
        node.KeyStringPhase = new int[keys.NodeCount];
        node.KeyStringDetail = new int[keys.NodeCount];
        node.KeyCanDivergeBelow = new bool[keys.NodeCount];
        node.KeyPropertiesBelow = new int[keys.NodeCount][];
        node.KeyStringPhase[0] = Phases.StringStart;
        Walk(node, keys, 0);
    }

    // Fills the key trie's per-node tables below 'trieNode', whose own string phase is already set.
    private static void Walk(GrammarNode node, LiteralTrie keys, int trieNode)
    {
        var below = new List<int>();
        int terminal = keys.Terminal(trieNode);
        if (terminal >= 0 && node.PropertyEnabled[terminal])
        {
            below.Add(terminal);
        }

        int phase = node.KeyStringPhase[trieNode];
        bool diverge = phase is Phases.StringBody or Phases.StringContinuation;
        for (int i = 0; ; i++)
        {
            int child = keys.ChildAt(trieNode, i, out byte b);
            if (child < 0)
            {
                break;
            }

            int childPhase = phase;
            int count = 0;
            int detail = node.KeyStringDetail[trieNode];
            StepResult result = ScalarSteps.String(PlainString, ref childPhase, ref count, ref detail, b);
            node.KeyStringPhase[child] = result == StepResult.Continue ? childPhase : -1;
            node.KeyStringDetail[child] = detail;
            Walk(node, keys, child);
            diverge |= node.KeyCanDivergeBelow[child];
            below.AddRange(node.KeyPropertiesBelow[child]);
        }

        below.Sort();
        node.KeyPropertiesBelow[trieNode] = [.. below];
        node.KeyCanDivergeBelow[trieNode] = diverge;
    }
}
