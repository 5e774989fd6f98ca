using System.Text.Json;

namespace InferenceServer.Tokenization.Tests;

/// <summary>The tiny-pycoder model's reference prompts and greedy completions.</summary>
public class ReferenceModelTests
{
    private static readonly Lazy<HfTokenizer> Tokenizer =
        new(() => HfTokenizer.Load(Fixtures.PathOf("models", "tiny-pycoder", "tokenizer.json")));

    private static readonly Lazy<JsonElement[]> ReferenceCases = new(() =>
    {
        using JsonDocument document = JsonDocument.Parse(File.ReadAllText(Fixtures.PathOf("models", "tiny-pycoder", "reference.json")));
        return document.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.Clone()).ToArray();
    });

    public static TheoryData<int> Cases => [0, 1, 2, 3];

    [Fact]
    public void ReferenceHasFourCases() => Assert.Equal(4, ReferenceCases.Value.Length);

    [Theory]
    [MemberData(nameof(Cases))]
    public void PromptEncodesToReferenceIds(int index)
    {
        JsonElement reference = ReferenceCases.Value[index];
        int[] expected = Ints(reference.GetProperty("prompt"));

        Assert.Equal(expected, Tokenizer.Value.Encode(reference.GetProperty("prompt_text").GetString()!));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GreedyIdsDecodeToCompletionText(int index)
    {
        JsonElement reference = ReferenceCases.Value[index];
        int[] greedy = Ints(reference.GetProperty("greedy"));
        string completion = reference.GetProperty("completion_text").GetString()!;

        Assert.Equal(completion, Tokenizer.Value.Decode(greedy));

        StreamingDetokenizer stream = Tokenizer.Value.CreateStreamingDetokenizer();
        string streamed = string.Concat(greedy.Select(stream.Append)) + stream.Flush();
        Assert.Equal(completion, streamed);
    }

    private static int[] Ints(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt32()).ToArray();
}
