using System.Text;

namespace InferenceServer.Tokenization.Tests;

/// <summary>The internal building blocks: split behaviors, regex over surrogates, Unicode normalization, UTF-8 tails, streaming.</summary>
public class ComponentTests
{
    private const string Llama3Regex =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public static TheoryData<string, string[]> Behaviors => new()
    {
        // The examples of Hugging Face's NormalizedString::split documentation, splitting "the-final--countdown" on '-'.
        { "Removed", ["the", "final", "countdown"] },
        { "Isolated", ["the", "-", "final", "-", "-", "countdown"] },
        { "MergedWithPrevious", ["the-", "final-", "-", "countdown"] },
        { "MergedWithNext", ["the", "-final", "-", "-countdown"] },
        { "Contiguous", ["the", "-", "final", "--", "countdown"] },
    };

    [Theory]
    [MemberData(nameof(Behaviors))]
    public void SplitBehavesLikeHuggingFace(string behavior, string[] expected)
    {
        var output = new List<string>();
        new SplitPreTokenizer(HfRegex.ForLiteral("-"), Enum.Parse<SplitBehavior>(behavior), invert: false).PreTokenize("the-final--countdown", output);
        Assert.Equal(expected, output);
    }

    [Fact]
    public void InvertedSplitKeepsTheMatchesAsPieces()
    {
        var output = new List<string>();
        new SplitPreTokenizer(new HfRegex(@"\d+"), SplitBehavior.Removed, invert: true).PreTokenize("ab12cd345", output);
        Assert.Equal(["12", "345"], output);
    }

    [Fact]
    public void DigitsSplitsIndividuallyOrInRuns()
    {
        var individual = new List<string>();
        new DigitsPreTokenizer(individualDigits: true).PreTokenize("a123b4", individual);
        Assert.Equal(["a", "1", "2", "3", "b", "4"], individual);

        var runs = new List<string>();
        new DigitsPreTokenizer(individualDigits: false).PreTokenize("a123b4", runs);
        Assert.Equal(["a", "123", "b", "4"], runs);
    }

    [Fact]
    public void RegexTreatsCharactersOutsideTheBmpAsSingleCharacters()
    {
        // Hugging Face matches Unicode scalar values: the optional non-letter takes the whole emoji, and a
        // supplementary letter (mathematical bold A, category Lu) is a letter.
        var output = new List<string>();
        new SplitPreTokenizer(new HfRegex(Llama3Regex), SplitBehavior.Isolated, invert: false).PreTokenize("🙂abc 𝐀𝐁c 12345", output);
        Assert.Equal(["🙂abc", " 𝐀𝐁c", " ", "123", "45"], output);
    }

    public static TheoryData<string, string, string[]> RealWorldPatterns => new()
    {
        { "Llama 3", Llama3Regex, ["I", "'ve", " got", " ", "123", "45", " apples", "!\n", "  ", " x"] },
        {
            "Qwen 2",
            @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
            ["I", "'ve", " got", " ", "1", "2", "3", "4", "5", " apples", "!\n", "  ", " x"]
        },
        {
            "GPT-4o",
            @"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
            ["I've", " got", " ", "123", "45", " apples", "!\n", "  ", " x"]
        },
        {
            "DeepSeek V3",
            @"[!""#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
            ["I", "'ve", " got", " ", "12345", " apples", "!\n", "  ", " x"]
        },
    };

    [Theory]
    [MemberData(nameof(RealWorldPatterns))]
    public void RealWorldSplitPatternsCompileAndSplit(string family, string pattern, string[] expected)
    {
        var output = new List<string>();
        new SplitPreTokenizer(new HfRegex(pattern), SplitBehavior.Isolated, invert: false).PreTokenize("I've got 12345 apples!\n   x", output);
        Assert.True(expected.SequenceEqual(output), $"{family}: {string.Join(" | ", output)}");
    }

    [Fact]
    public void DecodeReplacesInvalidUtf8LikeRustFromUtf8Lossy()
    {
        HfTokenizer tokenizer = Fixtures.Tokenizer("pycoder");
        int Byte(int b) => tokenizer.TokenToId(ByteLevelAlphabet.ByteToChar[b].ToString())!.Value;

        // Each maximal invalid subpart becomes one U+FFFD.
        Assert.Equal("\uFFFDa", tokenizer.Decode([Byte(0xF0), Byte(0x9F), Byte(0x98), Byte('a')]));
        Assert.Equal("\uFFFD\uFFFD\uFFFD", tokenizer.Decode([Byte(0xED), Byte(0xA0), Byte(0x80)]));
        Assert.Equal("\uFFFD\uFFFDb", tokenizer.Decode([Byte(0xC0), Byte(0x80), Byte('b')]));
        Assert.Equal("\u00e9\uFFFD", tokenizer.Decode([Byte(0xC3), Byte(0xA9), Byte(0xC3)]));
    }

    [Fact]
    public void ByteLevelMapsBytesToPrintableCharacters()
    {
        var output = new List<string>();
        new ByteLevelPreTokenizer(addPrefixSpace: true, useRegex: true).PreTokenize("Hello wörld", output);
        Assert.Equal(["\u0120Hello", "\u0120w\u00c3\u00b6rld"], output);
    }

    [Theory]
    [InlineData("e\u0301", NormalizationForm.FormC, "\u00e9")]
    [InlineData("\u00e9", NormalizationForm.FormD, "e\u0301")]
    [InlineData("\uFB01", NormalizationForm.FormKC, "fi")]
    [InlineData("\uFB01", NormalizationForm.FormC, "\uFB01")]
    [InlineData("\u1E9B\u0323", NormalizationForm.FormC, "\u1E9B\u0323")]
    [InlineData("\u1E9B\u0323", NormalizationForm.FormD, "\u017F\u0323\u0307")]
    [InlineData("\u1E9B\u0323", NormalizationForm.FormKC, "\u1E69")]
    [InlineData("\u1E9B\u0323", NormalizationForm.FormKD, "s\u0323\u0307")]
    [InlineData("\uD55C\uAE00", NormalizationForm.FormD, "\u1112\u1161\u11AB\u1100\u1173\u11AF")]
    [InlineData("\u1112\u1161\u11AB\u1100\u1173\u11AF", NormalizationForm.FormC, "\uD55C\uAE00")]
    [InlineData("a\u0328\u0301\u0323", NormalizationForm.FormC, "\u0105\u0323\u0301")]
    [InlineData("\u212B", NormalizationForm.FormC, "\u00C5")]
    [InlineData("x\U0001D400", NormalizationForm.FormKC, "xA")]
    public void UnicodeNormalizationMatchesTheStandard(string input, NormalizationForm form, string expected)
    {
        Assert.Equal(expected, UnicodeNormalization.Normalize(input, form));
    }

    [Fact]
    public void LowercaseFollowsRustCharToLowercase()
    {
        Assert.Equal("i\u0307stanbul σσ äb", new LowercaseNormalizer().Normalize("\u0130STANBUL ΣΣ ÄB"));
    }

    [Theory]
    [InlineData(new byte[] { 0x61 }, 0)]
    [InlineData(new byte[] { 0xE2 }, 1)]
    [InlineData(new byte[] { 0xE2, 0x82 }, 2)]
    [InlineData(new byte[] { 0xE2, 0x82, 0xAC }, 0)]
    [InlineData(new byte[] { 0xF0, 0x9F, 0x99 }, 3)]
    [InlineData(new byte[] { 0xE0, 0x80 }, 0)]
    [InlineData(new byte[] { 0xED, 0xA0 }, 0)]
    [InlineData(new byte[] { 0x80 }, 0)]
    [InlineData(new byte[] { 0xC0 }, 0)]
    public void IncompleteUtf8TailIsDetected(byte[] bytes, int expected)
    {
        Assert.Equal(expected, Utf8Tail.IncompleteLength(bytes));
    }

    [Fact]
    public void StreamingHoldsBackSplitCharactersAndFlushesInvalidTailsAsReplacement()
    {
        HfTokenizer tokenizer = Fixtures.Tokenizer("pycoder");
        int[] ids = tokenizer.Encode("a🙂b 日本").ToArray();
        StreamingDetokenizer stream = tokenizer.CreateStreamingDetokenizer();
        var pieces = ids.Select(stream.Append).ToList();

        Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD'));
        Assert.Equal("a🙂b 日本", string.Concat(pieces) + stream.Flush());

        // Stop in the middle of the emoji: Flush reports what Hugging Face's decode gives for the same ids.
        int cut = Array.FindIndex(ids, id => tokenizer.Decode([id]).Contains('\uFFFD')) + 1;
        StreamingDetokenizer partial = tokenizer.CreateStreamingDetokenizer();
        string text = string.Concat(ids.Take(cut).Select(partial.Append));
        Assert.Equal(tokenizer.Decode(ids.AsSpan(0, cut)), text + partial.Flush());
        Assert.EndsWith("\uFFFD", tokenizer.Decode(ids.AsSpan(0, cut)), StringComparison.Ordinal);
    }

    [Fact]
    public void StreamingSkipsSpecialTokensWhenAsked()
    {
        HfTokenizer tokenizer = Fixtures.Tokenizer("chatml");
        int[] ids = tokenizer.Encode("<|im_start|>hi<|im_end|>").ToArray();

        StreamingDetokenizer skipping = tokenizer.CreateStreamingDetokenizer(skipSpecialTokens: true);
        Assert.Equal("hi", string.Concat(ids.Select(skipping.Append)) + skipping.Flush());

        StreamingDetokenizer keeping = tokenizer.CreateStreamingDetokenizer();
        Assert.Equal("<|im_start|>hi<|im_end|>", string.Concat(ids.Select(keeping.Append)) + keeping.Flush());
    }
}
