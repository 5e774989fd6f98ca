using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace InferenceServer.Tokenization;

/// <summary>
/// Reads a Hugging Face <c>tokenizer.json</c> into an <see cref="HfTokenizer"/>: builds each declared component and
/// refuses, with a <see cref="TokenizerLoadException"/> naming the file, the component and its type, anything it
/// does not implement.
/// </summary>
internal sealed class TokenizerJsonLoader
{
    private readonly string _source;

    private TokenizerJsonLoader(string source)
    {
        _source = source;
    }

    /// <summary>Parses and builds the tokenizer.</summary>
    /// <param name="json">The tokenizer.json text.</param>
    /// <param name="source">The file name used in error messages.</param>
    public static HfTokenizer Load(string json, string source)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new TokenizerLoadException($"{source}: invalid JSON: {e.Message}", e);
        }

        using (document)
        {
            return new TokenizerJsonLoader(source).Build(document.RootElement);
        }
    }

    private HfTokenizer Build(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw Invalid("tokenizer", "the document is not a JSON object");
        }

        TextNormalizer? normalizer = ReadNormalizer(Optional(root, "normalizer"), "normalizer");
        PreTokenizerStep? preTokenizer = ReadPreTokenizer(Optional(root, "pre_tokenizer"), "pre_tokenizer");
        if (Optional(root, "model") is not { } modelElement)
        {
            throw Invalid("model", "missing");
        }

        BpeModel model = ReadModel(modelElement, "model");
        List<AddedToken> addedTokens = ReadAddedTokens(Optional(root, "added_tokens"), "added_tokens");
        SpecialTokenTemplate template = ReadPostProcessor(Optional(root, "post_processor"), "post_processor");
        DecoderKind decoder = ReadDecoder(Optional(root, "decoder"), "decoder");
        return new HfTokenizer(normalizer, preTokenizer, model, addedTokens, template, decoder);
    }

    private TextNormalizer? ReadNormalizer(JsonElement? element, string component)
    {
        if (element is not { } json)
        {
            return null;
        }

        string type = TypeOf(json, component);
        switch (type)
        {
            case "NFC":
                return new UnicodeFormNormalizer(NormalizationForm.FormC);
            case "NFD":
                return new UnicodeFormNormalizer(NormalizationForm.FormD);
            case "NFKC":
                return new UnicodeFormNormalizer(NormalizationForm.FormKC);
            case "NFKD":
                return new UnicodeFormNormalizer(NormalizationForm.FormKD);
            case "Lowercase":
                return new LowercaseNormalizer();
            case "StripAccents":
                return new StripAccentsNormalizer();
            case "Strip":
                return new StripNormalizer(Bool(json, "strip_left", true, component), Bool(json, "strip_right", true, component));
            case "Prepend":
                return new PrependNormalizer(RequiredString(json, "prepend", component));
            case "Replace":
                HfRegex pattern = ReadPattern(json, component);
                if (pattern.Pattern.Length == 0)
                {
                    throw Invalid(component, "Replace with an empty pattern is not supported");
                }

                return new ReplaceNormalizer(pattern, RequiredString(json, "content", component));
            case "Sequence":
                var normalizers = new List<TextNormalizer>();
                int index = 0;
                foreach (JsonElement item in RequiredArray(json, "normalizers", component))
                {
                    string itemComponent = $"{component}.normalizers[{index++}]";
                    normalizers.Add(ReadNormalizer(NullToNone(item), itemComponent)
                        ?? throw Invalid(itemComponent, "null is not a normalizer"));
                }

                return new SequenceNormalizer(normalizers.ToArray());
            default:
                throw Unsupported(component, type);
        }
    }

    private PreTokenizerStep? ReadPreTokenizer(JsonElement? element, string component)
    {
        if (element is not { } json)
        {
            return null;
        }

        string type = TypeOf(json, component);
        switch (type)
        {
            case "ByteLevel":
                return new ByteLevelPreTokenizer(
                    Bool(json, "add_prefix_space", true, component),
                    Bool(json, "use_regex", true, component));
            case "Split":
                return new SplitPreTokenizer(
                    ReadPattern(json, component),
                    ReadBehavior(json, component),
                    Bool(json, "invert", false, component));
            case "Digits":
                return new DigitsPreTokenizer(Bool(json, "individual_digits", false, component));
            case "Sequence":
                var steps = new List<PreTokenizerStep>();
                int index = 0;
                foreach (JsonElement item in RequiredArray(json, "pretokenizers", component))
                {
                    string itemComponent = $"{component}.pretokenizers[{index++}]";
                    steps.Add(ReadPreTokenizer(NullToNone(item), itemComponent)
                        ?? throw Invalid(itemComponent, "null is not a pre_tokenizer"));
                }

                return new SequencePreTokenizer(steps.ToArray());
            default:
                throw Unsupported(component, type);
        }
    }

    private SplitBehavior ReadBehavior(JsonElement json, string component)
    {
        string behavior = RequiredString(json, "behavior", component);
        return behavior switch
        {
            "Removed" => SplitBehavior.Removed,
            "Isolated" => SplitBehavior.Isolated,
            "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
            "MergedWithNext" => SplitBehavior.MergedWithNext,
            "Contiguous" => SplitBehavior.Contiguous,
            _ => throw Invalid(component, $"split behavior '{behavior}' is not supported"),
        };
    }

    private HfRegex ReadPattern(JsonElement json, string component)
    {
        if (Optional(json, "pattern") is not { ValueKind: JsonValueKind.Object } pattern)
        {
            throw Invalid(component, "'pattern' must be {\"String\": ...} or {\"Regex\": ...}");
        }

        try
        {
            if (Optional(pattern, "String") is { ValueKind: JsonValueKind.String } literal)
            {
                return HfRegex.ForLiteral(literal.GetString()!);
            }

            if (Optional(pattern, "Regex") is { ValueKind: JsonValueKind.String } regex)
            {
                return new HfRegex(regex.GetString()!);
            }
        }
        catch (ArgumentException e)
        {
            throw new TokenizerLoadException($"{_source}: {component}: unsupported or invalid regex: {e.Message}", e);
        }

        throw Invalid(component, "'pattern' must be {\"String\": ...} or {\"Regex\": ...}");
    }

    private BpeModel ReadModel(JsonElement json, string component)
    {
        if (json.ValueKind != JsonValueKind.Object)
        {
            throw Invalid(component, "not a JSON object");
        }

        // Old files omit the model type; Hugging Face then recognises BPE by its merges.
        string type = Optional(json, "type") is { ValueKind: JsonValueKind.String } typeElement
            ? typeElement.GetString()!
            : Optional(json, "merges") is not null ? "BPE" : throw Invalid(component, "has no 'type'");
        if (type != "BPE")
        {
            throw Unsupported(component, type);
        }

        if (Optional(json, "dropout") is { ValueKind: JsonValueKind.Number } dropout && dropout.GetDouble() > 0)
        {
            throw Invalid(component, "BPE dropout is not supported");
        }

        if (Bool(json, "byte_fallback", false, component))
        {
            throw Invalid(component, "BPE byte_fallback is not supported");
        }

        Dictionary<string, int> vocabulary = ReadVocabulary(json, component);
        List<string> merges = ReadMerges(json, component);
        var options = new BpeOptions(vocabulary)
        {
            Merges = merges,
            UnknownToken = OptionalString(json, "unk_token", component),
            ContinuingSubwordPrefix = OptionalString(json, "continuing_subword_prefix", component),
            EndOfWordSuffix = OptionalString(json, "end_of_word_suffix", component),
            FuseUnknownTokens = Bool(json, "fuse_unk", false, component),
            ByteLevel = false,
        };
        if (options.UnknownToken is { } unknown && !vocabulary.ContainsKey(unknown))
        {
            throw Invalid(component, $"unk_token '{unknown}' is not in the vocabulary");
        }

        BpeTokenizer bpe;
        try
        {
            bpe = BpeTokenizer.Create(options);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            throw new TokenizerLoadException($"{_source}: {component}: {e.Message}", e);
        }

        return new BpeModel(bpe, vocabulary, Bool(json, "ignore_merges", false, component));
    }

    private Dictionary<string, int> ReadVocabulary(JsonElement json, string component)
    {
        if (Optional(json, "vocab") is not { ValueKind: JsonValueKind.Object } vocab)
        {
            throw Invalid(component, "'vocab' must be an object of token to id");
        }

        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        var seenIds = new HashSet<int>();
        foreach (JsonProperty entry in vocab.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
            {
                throw Invalid(component, $"vocab entry '{entry.Name}' has no valid id");
            }

            if (!seenIds.Add(id))
            {
                throw Invalid(component, $"vocab id {id} is used by more than one token");
            }

            vocabulary[entry.Name] = id;
        }

        if (vocabulary.Count == 0)
        {
            throw Invalid(component, "the vocabulary is empty");
        }

        return vocabulary;
    }

    private List<string> ReadMerges(JsonElement json, string component)
    {
        var pairs = new List<(string First, string Second)>();
        if (Optional(json, "merges") is { } merges)
        {
            if (merges.ValueKind != JsonValueKind.Array)
            {
                throw Invalid(component, "'merges' must be an array");
            }

            int index = 0;
            foreach (JsonElement merge in merges.EnumerateArray())
            {
                string first;
                string second;
                if (merge.ValueKind == JsonValueKind.String)
                {
                    // The legacy "a b" form, split at the first space as Hugging Face does.
                    string text = merge.GetString()!;
                    int space = text.IndexOf(' ', StringComparison.Ordinal);
                    if (space < 0)
                    {
                        throw Invalid(component, $"merges[{index}] '{text}' is not two tokens separated by a space");
                    }

                    first = text[..space];
                    second = text[(space + 1)..];
                }
                else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
                    && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
                {
                    first = merge[0].GetString()!;
                    second = merge[1].GetString()!;
                }
                else
                {
                    throw Invalid(component, $"merges[{index}] is neither \"a b\" nor [\"a\", \"b\"]");
                }

                if (first.Contains(' ', StringComparison.Ordinal) || second.Contains(' ', StringComparison.Ordinal))
                {
                    throw Invalid(component, $"merges[{index}] has a token containing a space, which Microsoft.ML.Tokenizers cannot represent");
                }

                pairs.Add((first, second));
                index++;
            }
        }

        // A repeated merge takes the rank of its last occurrence (Hugging Face collects the merges into a map).
        var lastIndex = new Dictionary<(string, string), int>();
        for (int i = 0; i < pairs.Count; i++)
        {
            lastIndex[pairs[i]] = i;
        }

        var result = new List<string>(pairs.Count);
        for (int i = 0; i < pairs.Count; i++)
        {
            if (lastIndex[pairs[i]] == i)
            {
                result.Add($"{pairs[i].First} {pairs[i].Second}");
            }
        }

        return result;
    }

    private List<AddedToken> ReadAddedTokens(JsonElement? element, string component)
    {
        var tokens = new List<AddedToken>();
        if (element is not { } json)
        {
            return tokens;
        }

        if (json.ValueKind != JsonValueKind.Array)
        {
            throw Invalid(component, "must be an array");
        }

        int index = 0;
        foreach (JsonElement item in json.EnumerateArray())
        {
            string itemComponent = $"{component}[{index++}]";
            if (item.ValueKind != JsonValueKind.Object
                || Optional(item, "id") is not { ValueKind: JsonValueKind.Number } idElement
                || !idElement.TryGetInt32(out int id) || id < 0)
            {
                throw Invalid(itemComponent, "needs a non-negative integer 'id'");
            }

            bool special = Bool(item, "special", false, itemComponent);
            tokens.Add(new AddedToken(
                id,
                RequiredString(item, "content", itemComponent),
                special,
                Bool(item, "single_word", false, itemComponent),
                Bool(item, "lstrip", false, itemComponent),
                Bool(item, "rstrip", false, itemComponent),
                Bool(item, "normalized", !special, itemComponent)));
        }

        return tokens;
    }

    private SpecialTokenTemplate ReadPostProcessor(JsonElement? element, string component)
    {
        if (element is not { } json)
        {
            return SpecialTokenTemplate.None;
        }

        string type = TypeOf(json, component);
        switch (type)
        {
            case "ByteLevel":
                // Only trims offsets; adds no token.
                return SpecialTokenTemplate.None;
            case "TemplateProcessing":
                return ReadTemplate(json, component);
            case "BertProcessing":
            case "RobertaProcessing":
                return new SpecialTokenTemplate([ReadTokenIdPair(json, "cls", component)], [ReadTokenIdPair(json, "sep", component)]);
            case "Sequence":
                SpecialTokenTemplate result = SpecialTokenTemplate.None;
                int index = 0;
                foreach (JsonElement item in RequiredArray(json, "processors", component))
                {
                    string itemComponent = $"{component}.processors[{index++}]";
                    if (NullToNone(item) is not { } processor)
                    {
                        throw Invalid(itemComponent, "null is not a post_processor");
                    }

                    result = result.Then(ReadPostProcessor(processor, itemComponent));
                }

                return result;
            default:
                throw Unsupported(component, type);
        }
    }

    private SpecialTokenTemplate ReadTemplate(JsonElement json, string component)
    {
        var specialTokens = new Dictionary<string, int[]>(StringComparer.Ordinal);
        if (Optional(json, "special_tokens") is { ValueKind: JsonValueKind.Object } specials)
        {
            foreach (JsonProperty special in specials.EnumerateObject())
            {
                if (Optional(special.Value, "ids") is not { ValueKind: JsonValueKind.Array } ids
                    || ids.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out _)))
                {
                    throw Invalid(component, $"special token '{special.Name}' needs integer 'ids'");
                }

                specialTokens[special.Name] = ids.EnumerateArray().Select(e => e.GetInt32()).ToArray();
            }
        }

        var prefix = new List<int>();
        var suffix = new List<int>();
        bool sequenceSeen = false;
        foreach (JsonElement piece in RequiredArray(json, "single", component))
        {
            if (Optional(piece, "SpecialToken") is { ValueKind: JsonValueKind.Object } specialToken)
            {
                string id = RequiredString(specialToken, "id", component);
                if (!specialTokens.TryGetValue(id, out int[]? ids))
                {
                    throw Invalid(component, $"template refers to special token '{id}' that special_tokens does not define");
                }

                (sequenceSeen ? suffix : prefix).AddRange(ids);
            }
            else if (Optional(piece, "Sequence") is { ValueKind: JsonValueKind.Object } sequence)
            {
                string id = RequiredString(sequence, "id", component);
                if (id != "A" || sequenceSeen)
                {
                    throw Invalid(component, $"single template must contain sequence A exactly once (found '{id}')");
                }

                sequenceSeen = true;
            }
            else
            {
                throw Invalid(component, "template pieces must be SpecialToken or Sequence");
            }
        }

        if (!sequenceSeen)
        {
            throw Invalid(component, "single template has no sequence A");
        }

        return new SpecialTokenTemplate(prefix.ToArray(), suffix.ToArray());
    }

    private int ReadTokenIdPair(JsonElement json, string name, string component)
    {
        if (Optional(json, name) is { ValueKind: JsonValueKind.Array } pair && pair.GetArrayLength() == 2
            && pair[1].ValueKind == JsonValueKind.Number && pair[1].TryGetInt32(out int id))
        {
            return id;
        }

        throw Invalid(component, $"'{name}' must be [token, id]");
    }

    private DecoderKind ReadDecoder(JsonElement? element, string component)
    {
        if (element is not { } json)
        {
            return DecoderKind.JoinWithSpaces;
        }

        string type = TypeOf(json, component);
        if (type == "ByteLevel")
        {
            return DecoderKind.ByteLevel;
        }

        if (type != "Sequence")
        {
            throw Unsupported(component, type);
        }

        int byteLevelCount = 0;
        int index = 0;
        foreach (JsonElement item in RequiredArray(json, "decoders", component))
        {
            string itemComponent = $"{component}.decoders[{index++}]";
            string itemType = NullToNone(item) is { } decoder
                ? TypeOf(decoder, itemComponent)
                : throw Invalid(itemComponent, "null is not a decoder");
            if (itemType != "ByteLevel")
            {
                throw Unsupported(itemComponent, itemType);
            }

            byteLevelCount++;
        }

        if (byteLevelCount != 1)
        {
            throw Invalid(component, "a Sequence decoder must contain exactly one ByteLevel decoder");
        }

        return DecoderKind.ByteLevel;
    }

    private static JsonElement? Optional(JsonElement json, string name)
        => json.ValueKind == JsonValueKind.Object && json.TryGetProperty(name, out JsonElement value)
            ? NullToNone(value)
            : null;

    private static JsonElement? NullToNone(JsonElement value) => value.ValueKind == JsonValueKind.Null ? null : value;

    private string TypeOf(JsonElement json, string component)
        => json.ValueKind == JsonValueKind.Object && Optional(json, "type") is { ValueKind: JsonValueKind.String } type
            ? type.GetString()!
            : throw Invalid(component, "has no 'type'");

    private bool Bool(JsonElement json, string name, bool defaultValue, string component)
        => Optional(json, name) switch
        {
            null => defaultValue,
            { ValueKind: JsonValueKind.True } => true,
            { ValueKind: JsonValueKind.False } => false,
            _ => throw Invalid(component, $"'{name}' must be true or false"),
        };

    private string RequiredString(JsonElement json, string name, string component)
        => OptionalString(json, name, component) ?? throw Invalid(component, $"'{name}' is missing");

    private string? OptionalString(JsonElement json, string name, string component)
        => Optional(json, name) switch
        {
            null => null,
            { ValueKind: JsonValueKind.String } value => value.GetString(),
            _ => throw Invalid(component, $"'{name}' must be a string"),
        };

    private JsonElement.ArrayEnumerator RequiredArray(JsonElement json, string name, string component)
        => Optional(json, name) is { ValueKind: JsonValueKind.Array } array
            ? array.EnumerateArray()
            : throw Invalid(component, $"'{name}' must be an array");

    private TokenizerLoadException Unsupported(string component, string type)
        => new($"{_source}: {component} type '{type}' is not supported");

    private TokenizerLoadException Invalid(string component, string problem)
        => new($"{_source}: {component}: {problem}");
}
