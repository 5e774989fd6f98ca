using System.Text.Json.Nodes;

namespace InferenceServer.Tokenization.Tests;

/// <summary>tokenizer.json components: refusals, synthetic variants (Split, normalizers, templates, added tokens).</summary>
public class LoaderTests
{
    private const string Gpt2Regex = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly Lazy<HfTokenizer> SplitThenByteLevel = new(() =>
    {
        JsonObject json = Fixtures.PycoderJson();
        json["pre_tokenizer"] = JsonNode.Parse($$"""
            {"type": "Sequence", "pretokenizers": [
              {"type": "Split", "pattern": {"Regex": {{JsonValue.Create(Gpt2Regex).ToJsonString()}}}, "behavior": "Isolated", "invert": false},
              {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
            ]}
            """);
        return HfTokenizer.FromJson(json.ToJsonString(), "split-bytelevel.json");
    });

    public static TheoryData<int> PycoderCases => Fixtures.PycoderCases();

    public static TheoryData<string, string, string> Refusals => new()
    {
        { "model", """{"type": "Unigram", "unk_id": 0, "vocab": [["a", 0.0]]}""", "model type 'Unigram'" },
        { "normalizer", """{"type": "Precompiled", "precompiled_charsmap": ""}""", "normalizer type 'Precompiled'" },
        { "normalizer", """{"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "BertNormalizer"}]}""", "normalizer.normalizers[1] type 'BertNormalizer'" },
        { "pre_tokenizer", """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}""", "pre_tokenizer type 'Metaspace'" },
        { "pre_tokenizer", """{"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}]}""", "pre_tokenizer.pretokenizers[0] type 'Whitespace'" },
        { "decoder", """{"type": "WordPiece", "prefix": "##", "cleanup": true}""", "decoder type 'WordPiece'" },
        { "decoder", """{"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "ByteLevel"}]}""", "decoder.decoders[0] type 'ByteFallback'" },
        { "post_processor", """{"type": "MysteryProcessing"}""", "post_processor type 'MysteryProcessing'" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void RefusesUnsupportedComponentsNamingThem(string component, string replacement, string expected)
    {
        JsonObject json = Fixtures.PycoderJson();
        json[component] = JsonNode.Parse(replacement);

        var error = Assert.Throws<TokenizerLoadException>(() => HfTokenizer.FromJson(json.ToJsonString(), "variant/tokenizer.json"));

        Assert.StartsWith("variant/tokenizer.json: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Contains("not supported", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RefusesByteFallbackAndBadMerges()
    {
        JsonObject json = Fixtures.PycoderJson();
        json["model"]!["byte_fallback"] = true;
        var fallback = Assert.Throws<TokenizerLoadException>(() => HfTokenizer.FromJson(json.ToJsonString(), "t.json"));
        Assert.Contains("model", fallback.Message, StringComparison.Ordinal);
        Assert.Contains("byte_fallback", fallback.Message, StringComparison.Ordinal);

        json = Fixtures.PycoderJson();
        json["model"]!["merges"]!.AsArray().Add(JsonNode.Parse("""["zzzq", "qqqz"]"""));
        var merges = Assert.Throws<TokenizerLoadException>(() => HfTokenizer.FromJson(json.ToJsonString(), "t.json"));
        Assert.StartsWith("t.json: model: ", merges.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RefusesMissingFileAndInvalidJson()
    {
        string missing = Path.Combine(AppContext.BaseDirectory, "does-not-exist", "tokenizer.json");
        var notFound = Assert.Throws<TokenizerLoadException>(() => HfTokenizer.Load(missing));
        Assert.Contains(missing, notFound.Message, StringComparison.Ordinal);

        var invalid = Assert.Throws<TokenizerLoadException>(() => HfTokenizer.FromJson("{ not json", "broken.json"));
        Assert.StartsWith("broken.json: invalid JSON", invalid.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(PycoderCases))]
    public void SplitRegexThenByteLevelWithoutRegexEncodesLikeByteLevelRegex(int index)
    {
        VectorCase vector = Fixtures.Cases("pycoder")[index];

        Assert.Equal(vector.Ids, SplitThenByteLevel.Value.Encode(vector.Text));
        Assert.Equal(vector.Decoded, SplitThenByteLevel.Value.Decode(vector.Ids));
    }

    [Fact]
    public void AcceptsMergesWrittenAsStrings()
    {
        JsonObject json = Fixtures.PycoderJson();
        JsonArray merges = json["model"]!["merges"]!.AsArray();
        var legacy = new JsonArray();
        foreach (JsonNode? pair in merges)
        {
            legacy.Add($"{pair![0]!.GetValue<string>()} {pair[1]!.GetValue<string>()}");
        }

        json["model"]!["merges"] = legacy;
        HfTokenizer tokenizer = HfTokenizer.FromJson(json.ToJsonString(), "legacy-merges.json");

        foreach (VectorCase vector in Fixtures.Cases("pycoder").Take(60))
        {
            Assert.Equal(vector.Ids, tokenizer.Encode(vector.Text));
        }
    }

    [Fact]
    public void NfcNormalizerComposesDecomposedInput()
    {
        JsonObject json = Fixtures.PycoderJson();
        json["normalizer"] = JsonNode.Parse("""{"type": "NFC"}""");
        HfTokenizer nfc = HfTokenizer.FromJson(json.ToJsonString(), "nfc.json");
        HfTokenizer plain = Fixtures.Tokenizer("pycoder");

        Assert.Equal(nfc.Encode("caf\u00e9 r\u00e9sum\u00e9"), nfc.Encode("cafe\u0301 re\u0301sume\u0301"));
        Assert.Equal(plain.Encode("caf\u00e9"), nfc.Encode("cafe\u0301"));
        Assert.NotEqual(plain.Encode("caf\u00e9"), plain.Encode("cafe\u0301"));
    }

    [Fact]
    public void NormalizerSequenceAppliesInOrder()
    {
        JsonObject json = Fixtures.PycoderJson();
        json["normalizer"] = JsonNode.Parse("""
            {"type": "Sequence", "normalizers": [
              {"type": "NFKC"}, {"type": "Lowercase"},
              {"type": "Replace", "pattern": {"String": "hello"}, "content": "bye"},
              {"type": "Prepend", "prepend": "# "}
            ]}
            """);
        HfTokenizer tokenizer = HfTokenizer.FromJson(json.ToJsonString(), "sequence.json");
        HfTokenizer plain = Fixtures.Tokenizer("pycoder");

        Assert.Equal(plain.Encode("# bye fi world"), tokenizer.Encode("HELLO \uFB01 World"));
    }

    [Fact]
    public void TemplateProcessingAddsSpecialTokensOnlyWhenAsked()
    {
        JsonObject json = Fixtures.PycoderJson();
        json["post_processor"] = JsonNode.Parse("""
            {"type": "Sequence", "processors": [
              {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
              {"type": "TemplateProcessing",
               "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<|pad|>", "type_id": 0}}],
               "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
               "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]},
                                  "<|pad|>": {"id": "<|pad|>", "ids": [1], "tokens": ["<|pad|>"]}}}
            ]}
            """);
        HfTokenizer tokenizer = HfTokenizer.FromJson(json.ToJsonString(), "template.json");
        IReadOnlyList<int> plain = tokenizer.Encode("def f():");

        Assert.Equal([0, .. plain, 1], tokenizer.Encode("def f():", addSpecialTokens: true));
        Assert.Equal([0, 1], tokenizer.Encode(string.Empty, addSpecialTokens: true));
        Assert.Equal("<|endoftext|>def f():<|pad|>", tokenizer.Decode([0, .. plain, 1]));
        Assert.Equal("def f():", tokenizer.Decode([0, .. plain, 1], skipSpecialTokens: true));
    }

    [Fact]
    public void ExposesVocabularyLookups()
    {
        HfTokenizer tokenizer = Fixtures.Tokenizer("chatml");

        Assert.Equal(2500, tokenizer.VocabularySize);
        Assert.Equal(1, tokenizer.TokenToId("<|im_start|>"));
        Assert.Equal("<|im_end|>", tokenizer.IdToToken(2));
        Assert.Null(tokenizer.TokenToId("definitely not a token"));
        Assert.Null(tokenizer.IdToToken(-1));
        Assert.Null(tokenizer.IdToToken(tokenizer.VocabularySize));
        int space = tokenizer.TokenToId("\u0120")!.Value;
        Assert.Equal("\u0120", tokenizer.IdToToken(space));
        Assert.False(tokenizer.IsSpecial(space));
        Assert.Equal(" ", tokenizer.Decode([space]));
    }

    [Fact]
    public void AddedTokensHonourLeftAndRightStrip()
    {
        JsonObject json = Fixtures.PycoderJson();
        json["added_tokens"]!.AsArray().Add(JsonNode.Parse("""
            {"id": 4096, "content": "<mask>", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": true}
            """));
        HfTokenizer tokenizer = HfTokenizer.FromJson(json.ToJsonString(), "strip.json");
        HfTokenizer plain = Fixtures.Tokenizer("pycoder");

        Assert.Equal(4097, tokenizer.VocabularySize);
        Assert.Equal([.. plain.Encode("a"), 4096, .. plain.Encode("b")], tokenizer.Encode("a  <mask>\t b"));
        Assert.Equal("a<mask>b", tokenizer.Decode([.. plain.Encode("a"), 4096, .. plain.Encode("b")]));
    }

    [Fact]
    public void AddedTokensMatchLongestFirstAndSingleWordOnlyOutsideWords()
    {
        JsonObject json = Fixtures.PycoderJson();
        JsonArray added = json["added_tokens"]!.AsArray();
        added.Add(JsonNode.Parse("""{"id": 4096, "content": "<|end", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}"""));
        added.Add(JsonNode.Parse("""{"id": 4097, "content": "word", "single_word": true, "lstrip": false, "rstrip": false, "normalized": true, "special": false}"""));
        HfTokenizer tokenizer = HfTokenizer.FromJson(json.ToJsonString(), "added.json");
        HfTokenizer plain = Fixtures.Tokenizer("pycoder");

        Assert.Equal([0], tokenizer.Encode("<|endoftext|>"));
        Assert.Equal([4096, .. plain.Encode("x")], tokenizer.Encode("<|endx"));
        Assert.Equal([.. plain.Encode("a "), 4097, .. plain.Encode(" b")], tokenizer.Encode("a word b"));
        Assert.Equal(plain.Encode("swordfish"), tokenizer.Encode("swordfish"));
        Assert.False(tokenizer.IsSpecial(4097));
        Assert.Equal("a word b", tokenizer.Decode(tokenizer.Encode("a word b").ToArray(), skipSpecialTokens: true));
    }

    [Fact]
    public void IgnoreMergesEmitsWholeVocabularyWords()
    {
        JsonObject json = Fixtures.PycoderJson();
        json["model"]!["ignore_merges"] = true;
        HfTokenizer tokenizer = HfTokenizer.FromJson(json.ToJsonString(), "ignore-merges.json");

        foreach (VectorCase vector in Fixtures.Cases("pycoder").Take(40))
        {
            Assert.Equal(vector.Decoded, tokenizer.Decode(tokenizer.Encode(vector.Text).ToArray()));
        }
    }
}
