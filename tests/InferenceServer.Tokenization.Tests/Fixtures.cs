using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace InferenceServer.Tokenization.Tests;

/// <summary>The tokenizer fixtures copied next to the test assembly, loaded once.</summary>
internal static class Fixtures
{
    public static readonly string[] VectorFixtures = ["pycoder", "chatml"];

    private static readonly ConcurrentDictionary<string, HfTokenizer> Tokenizers = new();
    private static readonly ConcurrentDictionary<string, VectorCase[]> Vectors = new();

    public static string PathOf(params string[] parts) => Path.Combine([AppContext.BaseDirectory, .. parts]);

    public static string TokenizerPath(string fixture) => PathOf("fixtures", "tokenizers", fixture, "tokenizer.json");

    public static HfTokenizer Tokenizer(string fixture)
        => Tokenizers.GetOrAdd(fixture, f => HfTokenizer.Load(TokenizerPath(f)));

    public static VectorCase[] Cases(string fixture)
        => Vectors.GetOrAdd(fixture, f =>
        {
            using JsonDocument document = JsonDocument.Parse(File.ReadAllText(PathOf("fixtures", "tokenizers", f, "vectors.json")));
            return document.RootElement.GetProperty("cases").EnumerateArray()
                .Select(c => new VectorCase(
                    c.GetProperty("text").GetString()!,
                    c.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                    c.GetProperty("decoded").GetString()!))
                .ToArray();
        });

    public static TheoryData<string, int> AllCases()
    {
        var data = new TheoryData<string, int>();
        foreach (string fixture in VectorFixtures)
        {
            for (int i = 0; i < Cases(fixture).Length; i++)
            {
                data.Add(fixture, i);
            }
        }

        return data;
    }

    public static TheoryData<int> PycoderCases()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < Cases("pycoder").Length; i++)
        {
            data.Add(i);
        }

        return data;
    }

    /// <summary>The pycoder tokenizer.json as a mutable tree, to build synthetic variants from.</summary>
    public static JsonObject PycoderJson() => JsonNode.Parse(File.ReadAllText(TokenizerPath("pycoder")))!.AsObject();
}
