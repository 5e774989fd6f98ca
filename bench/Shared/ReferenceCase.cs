// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;

namespace InferenceServer.Bench;

/// <summary>One case of a model folder's <c>reference.json</c>: a prompt and the tokens greedy decoding gives for it.</summary>
internal sealed record ReferenceCase(int[] Prompt, int[] Greedy)
{
    /// <summary>Reads case <paramref name="index"/> of <paramref name="path"/>.</summary>
    public static ReferenceCase Load(string path, int index = 0)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        var item = document.RootElement.GetProperty("cases")[index];
        return new ReferenceCase(Ids(item.GetProperty("prompt")), Ids(item.GetProperty("greedy")));
    }

    /// <summary>A one-line verdict comparing <paramref name="actual"/> with <see cref="Greedy"/>.</summary>
    public string Verdict(IReadOnlyList<int> actual, out bool match)
    {
        var common = Math.Min(actual.Count, Greedy.Length);
        var first = 0;
        while (first < common && actual[first] == Greedy[first])
        {
            first++;
        }

        match = first == Greedy.Length && actual.Count == Greedy.Length;
        return match
            ? $"OK: {Greedy.Length}/{Greedy.Length} greedy tokens match the reference"
            : $"MISMATCH: first difference at token {first} of {Greedy.Length} (got {actual.Count} tokens: {string.Join(' ', actual)})";
    }

    private static int[] Ids(JsonElement array) => [.. array.EnumerateArray().Select(static e => e.GetInt32())];
}
