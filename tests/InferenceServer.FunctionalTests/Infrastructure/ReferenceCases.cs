using System.Text.Json;

namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>The cases of a model folder's <c>reference.json</c>: prompt ids and the greedy tokens Hugging Face produced.</summary>
public sealed record ReferenceCase(int[] Prompt, int[] Greedy, string? PromptText, string? CompletionText)
{
    public static IReadOnlyList<ReferenceCase> Load(string modelFolder)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(modelFolder, "reference.json")));
        var cases = new List<ReferenceCase>();
        foreach (var item in document.RootElement.GetProperty("cases").EnumerateArray())
        {
            cases.Add(new ReferenceCase(
                item.GetProperty("prompt").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                item.GetProperty("greedy").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                item.TryGetProperty("prompt_text", out var p) ? p.GetString() : null,
                item.TryGetProperty("completion_text", out var c) ? c.GetString() : null));
        }

        return cases;
    }
}
