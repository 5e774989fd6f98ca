using System.Text.Json;

namespace InferenceServer.Tests.OpenAi.ToolCalls;

/// <summary>The published chat templates and their Jinja2 renderings in tests/fixtures/chat-templates.</summary>
internal static class ChatTemplateFixtures
{
    public static readonly string[] Families =
    [
        "qwen2.5-instruct", "llama-3.1-instruct", "mistral-7b-instruct-v0.3", "deepseek-r1", "phi-3.5-mini-instruct", "gemma-2-it",
    ];

    private static string Folder => Path.Combine(AppContext.BaseDirectory, "fixtures", "chat-templates");

    public static string Template(string family) => File.ReadAllText(Path.Combine(Folder, family + ".jinja"));

    /// <summary>The rendering of <paramref name="scenario"/>: its output, or null and the error the template raised.</summary>
    public static (string? Output, string? Error) Rendering(string family, string scenario)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, family + ".renderings.json")));
        foreach (var rendering in document.RootElement.GetProperty("renderings").EnumerateArray())
        {
            if (rendering.GetProperty("scenario").GetString() == scenario)
            {
                return (rendering.TryGetProperty("output", out var output) ? output.GetString() : null,
                        rendering.TryGetProperty("error", out var error) ? error.GetString() : null);
            }
        }

        throw new InvalidOperationException($"No '{scenario}' rendering for {family}.");
    }

    /// <summary>The tools conversation's output of <paramref name="family"/>, which must exist.</summary>
    public static string ToolsOutput(string family) => Rendering(family, "tools").Output
        ?? throw new InvalidOperationException($"{family} raised on the tools conversation.");

    /// <summary>The text between <paramref name="before"/> (its last occurrence ahead of <paramref name="anchor"/>) and
    /// the first <paramref name="after"/> behind the anchor: an assistant turn as the model generates it.</summary>
    public static string Between(string output, string before, string anchor, string after)
    {
        var anchorIndex = output.IndexOf(anchor, StringComparison.Ordinal);
        Assert.True(anchorIndex >= 0, $"'{anchor}' is not in the rendering.");
        var start = output.LastIndexOf(before, anchorIndex, StringComparison.Ordinal) + before.Length;
        var end = output.IndexOf(after, anchorIndex, StringComparison.Ordinal);
        return output[start..end];
    }
}
