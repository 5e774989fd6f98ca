namespace InferenceServer.Tokenization.Tests;

/// <summary>Encoding, decoding and streaming against the Hugging Face vectors of the pycoder and chatml fixtures.</summary>
public class HuggingFaceVectorTests
{
    public static TheoryData<string, int> Cases => Fixtures.AllCases();

    [Theory]
    [MemberData(nameof(Cases))]
    public void EncodesAndDecodesLikeHuggingFace(string fixture, int index)
    {
        HfTokenizer tokenizer = Fixtures.Tokenizer(fixture);
        VectorCase vector = Fixtures.Cases(fixture)[index];

        Assert.Equal(vector.Ids, tokenizer.Encode(vector.Text));
        Assert.Equal(vector.Decoded, tokenizer.Decode(vector.Ids));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void StreamingDetokenizerMatchesFullDecodeWithoutHalfCharacters(string fixture, int index)
    {
        HfTokenizer tokenizer = Fixtures.Tokenizer(fixture);
        VectorCase vector = Fixtures.Cases(fixture)[index];
        StreamingDetokenizer stream = tokenizer.CreateStreamingDetokenizer();

        string text = string.Empty;
        foreach (int id in vector.Ids)
        {
            text += stream.Append(id);

            // Every prefix handed out is a prefix of the full decoding: no half character, no U+FFFD that a later
            // token would have completed.
            Assert.StartsWith(text, vector.Decoded, StringComparison.Ordinal);
            Assert.False(text.Length > 0 && char.IsHighSurrogate(text[^1]), "a lone high surrogate was emitted");
        }

        text += stream.Flush();
        Assert.Equal(vector.Decoded, text);
    }

    [Fact]
    public void VectorsCoverCharactersSplitAcrossTokens()
    {
        // The streaming theory above only proves something if some cases have multi-byte characters whose bytes
        // are spread over several tokens.
        HfTokenizer tokenizer = Fixtures.Tokenizer("pycoder");
        int split = 0;
        foreach (VectorCase vector in Fixtures.Cases("pycoder"))
        {
            foreach (int id in vector.Ids)
            {
                string piece = tokenizer.Decode([id]);
                if (piece.Contains('\uFFFD') && !vector.Decoded.Contains('\uFFFD'))
                {
                    split++;
                }
            }
        }

        Assert.True(split > 10, $"only {split} tokens hold partial characters");
    }

    [Fact]
    public void ChatMlSpecialTokensInsideTextAreMatchedWhole()
    {
        HfTokenizer tokenizer = Fixtures.Tokenizer("chatml");
        int imStart = tokenizer.TokenToId("<|im_start|>")!.Value;
        int imEnd = tokenizer.TokenToId("<|im_end|>")!.Value;
        VectorCase[] cases = Fixtures.Cases("chatml")
            .Where(c => c.Text.Contains("<|im_start|>", StringComparison.Ordinal))
            .ToArray();

        Assert.NotEmpty(cases);
        foreach (VectorCase vector in cases)
        {
            Assert.Contains(imStart, vector.Ids);
            Assert.Equal(vector.Ids, tokenizer.Encode(vector.Text));
        }

        Assert.Equal([imStart], tokenizer.Encode("<|im_start|>"));
        IReadOnlyList<int> ids = tokenizer.Encode("a<|im_start|>user\nhi<|im_end|>b");
        Assert.Equal(imStart, ids[1]);
        Assert.Equal(imEnd, ids[^2]);
        Assert.True(tokenizer.IsSpecial(imStart));
        Assert.Equal("auser\nhib", tokenizer.Decode(ids.ToArray(), skipSpecialTokens: true));
    }
}
