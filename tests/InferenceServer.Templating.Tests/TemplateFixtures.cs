// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text.Json;

namespace InferenceServer.Templating.Tests;

/// <summary>The real chat templates of tests/fixtures/chat-templates and what transformers' Jinja2 rendered from them.</summary>
internal static class TemplateFixtures
{
    public static string Folder => Path.Combine(AppContext.BaseDirectory, "fixtures", "chat-templates");

    public static string[] Families()
        => Directory.GetFiles(Folder, "*.renderings.json")
            .Select(f => Path.GetFileName(f)[..^".renderings.json".Length])
            .Order(StringComparer.Ordinal)
            .ToArray();

    public static JsonElement Renderings(string family)
        => JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, family + ".renderings.json"))).RootElement;

    public static string Template(string family) => File.ReadAllText(Path.Combine(Folder, family + ".jinja"));

    /// <summary>A tokenizer_config.json with the special tokens the rendering received.</summary>
    public static string ConfigJson(JsonElement renderings)
    {
        var config = new Dictionary<string, JsonElement>();
        foreach (JsonProperty token in renderings.GetProperty("special_tokens").EnumerateObject())
        {
            config[token.Name] = token.Value;
        }

        return JsonSerializer.Serialize(config);
    }
}
