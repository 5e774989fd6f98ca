// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace InferenceServer.Structured.Internal;

/// <summary>
/// Compiles a JSON schema into <see cref="GrammarNode"/>s. Every keyword is either enforced, an annotation (ignored),
/// or refused with <see cref="SchemaNotSupportedException"/>; malformed schemas get <see cref="ArgumentException"/>.
/// After compiling, nodes that accept no finite value are pruned where optional (so the matcher never walks into a
/// dead end) and the schema is refused when the root is one of them. Nested unions are flattened into their
/// distinct non-union alternatives, so that starting a value costs at most
/// <see cref="SchemaLimits.MaxUnionAlternatives"/> checks. Nothing here recurses without a bound: nesting inside one
/// schema is limited to <see cref="SchemaLimits.MaxNesting"/>, <c>$ref</c> targets are compiled from a work list,
/// and every pass over the compiled nodes is iterative; sizes and time are counted by <see cref="CompileBudget"/>.
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
    private readonly CompileBudget _budget;
    private readonly List<GrammarNode> _nodes = [];
    private readonly Dictionary<string, int> _refs = new(StringComparer.Ordinal);

    // $ref targets still to compile (compiled from this list, not recursively, so a chain of any length is iterative).
    private readonly Queue<(JsonElement Target, string Reference, GrammarNode Alias)> _pending = new();

    // The members of each object a $ref pointer walks through, by the pointer's prefix (a linear lookup per $ref
    // would make n references into n definitions quadratic).
    private readonly Dictionary<string, Dictionary<string, JsonElement>> _members = new(StringComparer.Ordinal);
    private int _any = -1;
    private int _anyObject = -1;
    private int _depth;

    private SchemaCompiler(JsonElement root, bool strict, SchemaLimits limits)
    {
        _root = root;
        _strict = strict;
        _budget = new CompileBudget(limits);
        _nodes.Add(new GrammarNode(NodeKind.Root));
    }

    /// <summary>Compiles a schema.</summary>
    /// <param name="schema">The schema (an object or a boolean).</param>
    /// <param name="strict">OpenAI's <c>strict</c>: every declared property is required.</param>
    /// <param name="limits">The budget.</param>
    /// <returns>The nodes; node 0 is the root.</returns>
    /// <exception cref="SchemaLimitExceededException">The schema exceeds <paramref name="limits"/>.</exception>
    public static GrammarNode[] Compile(JsonElement schema, bool strict, SchemaLimits limits)
    {
        int size = JsonMarshal.GetRawUtf8Value(schema).Length;
        if (size > limits.MaxSchemaBytes)
        {
            throw CompileBudget.Exceeded(nameof(SchemaLimits.MaxSchemaBytes), limits.MaxSchemaBytes, $"the schema is {size:N0} bytes long.");
        }

        var compiler = new SchemaCompiler(schema, strict, limits);
        compiler._nodes[0].Value = compiler.Ref("#", "#");
        while (compiler._pending.TryDequeue(out var pending))
        {
            pending.Alias.Alternatives = [compiler.Compile(pending.Target, pending.Reference)];
        }

        return compiler.Finish();
    }

    /// <summary>Compiles the grammar of any JSON object.</summary>
    /// <returns>The nodes; node 0 is the root.</returns>
    public static GrammarNode[] AnyObject()
    {
        var compiler = new SchemaCompiler(default, strict: false, SchemaLimits.Default);
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

    private int Add(GrammarNode node, string path)
    {
        _budget.Node(path);
        _nodes.Add(node);
        return _nodes.Count - 1;
    }

    // One schema inside another (properties, items, anyOf, ...): the nesting is bounded, so the recursion is too.
    private int Compile(JsonElement schema, string path)
    {
        if (_depth >= _budget.Limits.MaxNesting)
        {
            throw CompileBudget.Exceeded(nameof(SchemaLimits.MaxNesting), _budget.Limits.MaxNesting, $"schemas nest deeper at '{path}'.");
        }

        _depth++;
        try
        {
            return CompileNested(schema, path);
        }
        finally
        {
            _depth--;
        }
    }

    private int CompileNested(JsonElement schema, string path)
    {
        _budget.Work(1);
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
                int id = Add(union, path);
                int[] nodes = new int[alternatives.GetArrayLength()];
                int i = 0;
                foreach (JsonElement alternative in alternatives.EnumerateArray())
                {
                    nodes[i] = Compile(alternative, $"{path}/{combinator}/{i}");
                    i++;
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
        int unionId = Add(alternativesOfTypes, path);
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
        "number" => Add(new GrammarNode(NodeKind.Number), path),
        "integer" => IntegerNode(schema, path),
        "boolean" => Add(new GrammarNode(NodeKind.Literal) { Literals = new LiteralTrie([Encoding.UTF8.GetBytes("true"), Encoding.UTF8.GetBytes("false")]) }, path),
        _ => Add(new GrammarNode(NodeKind.Literal) { Literals = new LiteralTrie([Encoding.UTF8.GetBytes("null")]) }, path),
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

        return Add(new GrammarNode(NodeKind.Number) { IntegerOnly = true, Minimum = minimum, Maximum = maximum }, path);
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

            byte[] bytes = CanonicalJson.Serialize(value, _budget.Limits.MaxNesting, path);
            _budget.Literal(bytes.Length, path);
            if (matches && seen.Add(Convert.ToBase64String(bytes)))
            {
                serialized.Add(bytes);
            }
        }

        if (serialized.Count == 0)
        {
            throw new ArgumentException($"No 'enum' or 'const' value at '{path}' has the declared 'type'.");
        }

        return Add(new GrammarNode(NodeKind.Literal) { Literals = new LiteralTrie(serialized) }, path);
    }

    private int ObjectNode(JsonElement schema, string path)
    {
        var node = new GrammarNode(NodeKind.Object);
        int id = Add(node, path);
        var names = new List<string>();
        var indexOf = new Dictionary<string, int>(StringComparer.Ordinal);
        var values = new List<int>();
        if (schema.TryGetProperty("properties", out JsonElement properties))
        {
            if (properties.ValueKind != JsonValueKind.Object)
            {
                throw new ArgumentException($"JSON schema keyword 'properties' at '{path}' must be an object.");
            }

            foreach (JsonProperty property in properties.EnumerateObject())
            {
                if (!indexOf.TryAdd(property.Name, names.Count))
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

                _budget.Work(1);
                if (!indexOf.TryGetValue(name.GetString()!, out int index))
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
            _budget.Literal(node.PropertyNames[i].Length, path);
        }

        node.PropertyValues = [.. values];
        node.PropertyRequired = required;
        node.AdditionalValue = additional;
        if (additional >= 0)
        {
            // Beside declared names, extra keys have no escapes, so that no extra key can spell a declared name.
            node.ExtraKey = Add(new GrammarNode(NodeKind.String) { AllowEscapes = names.Count == 0 }, path);
        }

        return id;
    }

    private int ArrayNode(JsonElement schema, string path)
    {
        var node = new GrammarNode(NodeKind.Array);
        int id = Add(node, path);
        if (schema.TryGetProperty("prefixItems", out JsonElement prefixItems))
        {
            if (prefixItems.ValueKind != JsonValueKind.Array)
            {
                throw new ArgumentException($"JSON schema keyword 'prefixItems' at '{path}' must be an array of schemas.");
            }

            int[] prefix = new int[prefixItems.GetArrayLength()];
            int i = 0;
            foreach (JsonElement item in prefixItems.EnumerateArray())
            {
                prefix[i] = Compile(item, $"{path}/prefixItems/{i}");
                i++;
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

        return Add(node, path);
    }

    // Any JSON value; built once per grammar (its object and array refer back to it).
    private int Any()
    {
        if (_any >= 0)
        {
            return _any;
        }

        var union = new GrammarNode(NodeKind.Union);
        _any = Add(union, "#");
        int key = Add(new GrammarNode(NodeKind.String), "#");
        _anyObject = Add(new GrammarNode(NodeKind.Object) { AdditionalValue = _any, ExtraKey = key }, "#");
        int array = Add(new GrammarNode(NodeKind.Array) { Items = _any }, "#");
        int number = Add(new GrammarNode(NodeKind.Number), "#");
        byte[][] literals = [Encoding.UTF8.GetBytes("true"), Encoding.UTF8.GetBytes("false"), Encoding.UTF8.GetBytes("null")];
        int literal = Add(new GrammarNode(NodeKind.Literal) { Literals = new LiteralTrie(literals) }, "#");
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

            int prefixEnd = 0;
            foreach (string rawSegment in pointer[1..].Split('/'))
            {
                _budget.Work(1);
                string prefix = pointer[..prefixEnd];
                prefixEnd += rawSegment.Length + 1;
                string segment = Uri.UnescapeDataString(rawSegment).Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
                bool found = target.ValueKind switch
                {
                    JsonValueKind.Object => Members(prefix, target).TryGetValue(segment, out target),
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

        // A union of one alternative stands for the target, which compiles later from the work list (so that
        // recursion refers to the alias, and a chain of references does not nest calls).
        var alias = new GrammarNode(NodeKind.Union);
        int id = Add(alias, path);
        _refs[reference] = id;
        _pending.Enqueue((target, reference, alias));
        return id;
    }

    // The members of the object at JSON pointer 'prefix' (a duplicate name: the last one, as TryGetProperty finds).
    private Dictionary<string, JsonElement> Members(string prefix, JsonElement target)
    {
        if (!_members.TryGetValue(prefix, out Dictionary<string, JsonElement>? members))
        {
            members = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
            foreach (JsonProperty property in target.EnumerateObject())
            {
                _budget.Work(1);
                members[property.Name] = property.Value;
            }

            _members.Add(prefix, members);
        }

        return members;
    }

    private GrammarNode[] Finish()
    {
        GrammarNode[] nodes = [.. _nodes];
        int[] unionOrder = UnionsInPostOrder(nodes);
        bool[] productive = Productive(nodes);
        if (!productive[0])
        {
            throw new ArgumentException("The JSON schema accepts no finite document (its required parts recurse without end or are empty).");
        }

        foreach (GrammarNode node in nodes)
        {
            Prune(node, productive);
        }

        Flatten(nodes, unionOrder);
        foreach (GrammarNode node in nodes)
        {
            if (node.Kind != NodeKind.Union)
            {
                FillStartBytes(node);
            }
        }

        foreach (int union in unionOrder)
        {
            // Flattened: the alternatives are not unions, so their start bytes are known.
            foreach (int alternative in nodes[union].Alternatives)
            {
                nodes[union].StartBytes.UnionWith(nodes[alternative].StartBytes);
            }
        }

        foreach (GrammarNode node in nodes)
        {
            if (node.Kind == NodeKind.Object)
            {
                FinishObject(node);
                _budget.Work(1 + (node.Keys?.NodeCount ?? 0));
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

    // The first bytes of a non-union node's values.
    private static void FillStartBytes(GrammarNode node)
    {
        ByteSet start = node.StartBytes;
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
        }
    }

    // The unions, each after every union among its alternatives (a depth-first post-order, with an explicit stack).
    // A union that reaches itself through unions only would expand forever without reading a byte: refused.
    private int[] UnionsInPostOrder(GrammarNode[] nodes)
    {
        var order = new List<int>();
        byte[] color = new byte[nodes.Length];
        var stack = new Stack<(int Node, int Next)>();
        for (int start = 0; start < nodes.Length; start++)
        {
            if (nodes[start].Kind != NodeKind.Union || color[start] != 0)
            {
                continue;
            }

            color[start] = 1;
            stack.Push((start, 0));
            while (stack.TryPop(out var top))
            {
                _budget.Work(1);
                int[] alternatives = nodes[top.Node].Alternatives;
                if (top.Next == alternatives.Length)
                {
                    color[top.Node] = 2;
                    order.Add(top.Node);
                    continue;
                }

                stack.Push((top.Node, top.Next + 1));
                int next = alternatives[top.Next];
                if (nodes[next].Kind != NodeKind.Union || color[next] == 2)
                {
                    continue;
                }

                if (color[next] == 1)
                {
                    throw new ArgumentException(
                        "The JSON schema refers to itself without consuming input (a '$ref' or 'anyOf' cycle that reaches no object or array).");
                }

                color[next] = 1;
                stack.Push((next, 0));
            }
        }

        return [.. order];
    }

    // Replaces each union's alternatives by the distinct non-union nodes it reaches through nested unions, children
    // before parents, so that starting a value never expands unions (and never exponentially).
    private void Flatten(GrammarNode[] nodes, int[] unionOrder)
    {
        int[] seen = new int[nodes.Length];
        var flat = new List<int>();
        foreach (int union in unionOrder)
        {
            flat.Clear();
            int stamp = union + 1;
            foreach (int alternative in nodes[union].Alternatives)
            {
                if (nodes[alternative].Kind == NodeKind.Union)
                {
                    // Already flattened (post-order).
                    foreach (int leaf in nodes[alternative].Alternatives)
                    {
                        if (seen[leaf] != stamp)
                        {
                            seen[leaf] = stamp;
                            flat.Add(leaf);
                        }
                    }

                    _budget.Work(nodes[alternative].Alternatives.Length);
                }
                else if (seen[alternative] != stamp)
                {
                    seen[alternative] = stamp;
                    flat.Add(alternative);
                }

                if (flat.Count > _budget.Limits.MaxUnionAlternatives)
                {
                    break;
                }
            }

            _budget.Alternatives(flat.Count);
            nodes[union].Alternatives = [.. flat];
        }
    }

    // Which nodes accept at least one finite value: the least fixed point, by propagation from the nodes that need
    // nothing (each node counts the productive children it still waits for), in time linear in the edges.
    private bool[] Productive(GrammarNode[] nodes)
    {
        bool[] productive = new bool[nodes.Length];
        int[] waiting = new int[nodes.Length];
        var dependents = new List<int>?[nodes.Length];
        var ready = new Stack<int>();
        for (int i = 0; i < nodes.Length; i++)
        {
            _budget.Work(1);
            int needs = 0;
            bool impossible = false;
            foreach (int child in Requirements(nodes[i]))
            {
                if (child < 0)
                {
                    impossible = true;
                    break;
                }

                (dependents[child] ??= []).Add(i);
                needs++;
            }

            // A union needs one productive alternative, anything else all its required children (-1: never).
            waiting[i] = impossible ? -1 : nodes[i].Kind == NodeKind.Union ? (needs == 0 ? -1 : 1) : needs;
            if (waiting[i] == 0)
            {
                ready.Push(i);
            }
        }

        while (ready.TryPop(out int node))
        {
            if (productive[node])
            {
                continue;
            }

            productive[node] = true;
            if (dependents[node] is not { } parents)
            {
                continue;
            }

            _budget.Work(parents.Count);
            foreach (int parent in parents)
            {
                if (waiting[parent] > 0 && --waiting[parent] == 0)
                {
                    ready.Push(parent);
                }
            }
        }

        return productive;
    }

    // The children a node needs productive: a union's alternatives (any one), a root's value, an object's required
    // properties, an array's first items up to its minimum (all); -1 for a need nothing meets. A child needed twice
    // counts twice.
    private static IEnumerable<int> Requirements(GrammarNode node)
    {
        switch (node.Kind)
        {
            case NodeKind.Root:
                yield return node.Value;
                break;
            case NodeKind.Union:
                foreach (int alternative in node.Alternatives)
                {
                    yield return alternative;
                }

                break;
            case NodeKind.Object:
                for (int j = 0; j < node.PropertyValues.Length; j++)
                {
                    if (node.PropertyRequired[j])
                    {
                        yield return node.PropertyValues[j];
                    }
                }

                break;
            case NodeKind.Array:
                int needed = Math.Min(node.MinItems, node.PrefixItems.Length + 1);
                for (int k = 0; k < needed; k++)
                {
                    int item = k < node.PrefixItems.Length ? node.PrefixItems[k] : node.Items;
                    if (item < 0)
                    {
                        // An item is needed and none is allowed: never productive.
                        yield return -1;
                        yield break;
                    }

                    yield return item;
                }

                break;
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
        FillKeyTables(node, keys);
    }

    // The key trie's per-node tables, without recursion (a name may be thousands of bytes long): the string phases
    // from the root down (a parent's index is below its children's), what lies below each node from the leaves up.
    private static void FillKeyTables(GrammarNode node, LiteralTrie keys)
    {
        int count = keys.NodeCount;
        node.KeyStringPhase = new int[count];
        node.KeyStringDetail = new int[count];
        node.KeyCanDivergeBelow = new bool[count];
        node.KeyPropertiesBelow = new int[count][];
        node.KeyStringPhase[0] = Phases.StringStart;
        for (int trieNode = 0; trieNode < count; trieNode++)
        {
            for (int i = 0; ; i++)
            {
                int child = keys.ChildAt(trieNode, i, out byte b);
                if (child < 0)
                {
                    break;
                }

                int childPhase = node.KeyStringPhase[trieNode];
                int length = 0;
                int detail = node.KeyStringDetail[trieNode];
                StepResult result = ScalarSteps.String(PlainString, ref childPhase, ref length, ref detail, b);
                node.KeyStringPhase[child] = result == StepResult.Continue ? childPhase : -1;
                node.KeyStringDetail[child] = detail;
            }
        }

        var below = new List<int>();
        for (int trieNode = count - 1; trieNode >= 0; trieNode--)
        {
            below.Clear();
            int terminal = keys.Terminal(trieNode);
            if (terminal >= 0 && node.PropertyEnabled[terminal])
            {
                below.Add(terminal);
            }

            int phase = node.KeyStringPhase[trieNode];
            bool diverge = phase is Phases.StringBody or Phases.StringContinuation;
            for (int i = 0; ; i++)
            {
                int child = keys.ChildAt(trieNode, i, out _);
                if (child < 0)
                {
                    break;
                }

                diverge |= node.KeyCanDivergeBelow[child];
                below.AddRange(node.KeyPropertiesBelow[child]);
            }

            below.Sort();
            node.KeyPropertiesBelow[trieNode] = [.. below];
            node.KeyCanDivergeBelow[trieNode] = diverge;
        }
    }
}
