// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text;
using System.Text.Json;

namespace InferenceServer.Templating.Tests;

/// <summary>
/// Differential test against Jinja2 on mangled real templates: MutationCases.json lists random edits of the fixture
/// templates and what Jinja2 (transformers' environment) made of each. Replaying the edits must give the same
/// output, or an error of the same kind (regenerate with generate_mutation_cases.py).
/// </summary>
public class MutationTests
{
    private static readonly Lazy<JsonElement> Document = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "MutationCases.json"))).RootElement);

    public static TheoryData<int> Indices()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < Document.Value.GetProperty("cases").GetArrayLength(); i++)
        {
            data.Add(i);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Indices))]
    public void MutatedTemplate_AgreesWithJinja2(int index)
    {
        JsonElement c = Document.Value.GetProperty("cases")[index];
        string family = c.GetProperty("family").GetString()!;
        var source = new StringBuilder(TemplateFixtures.Template(family));
        foreach (JsonElement edit in c.GetProperty("edits").EnumerateArray())
        {
            int at = edit[0].GetInt32();
            source.Remove(at, edit[1].GetInt32()).Insert(at, edit[2].GetString());
        }

        JsonElement renderings = TemplateFixtures.Renderings(family);
        JsonElement conversation = renderings.GetProperty("renderings")[c.GetProperty("conversation").GetInt32()];
        JsonElement kwargs = conversation.GetProperty("kwargs");
        var extra = new Dictionary<string, JsonElement> { ["date_string"] = renderings.GetProperty("date_string") };
        string Render()
            => ChatTemplateSet.FromTemplateText(source.ToString(), TemplateFixtures.ConfigJson(renderings)).Render(
                conversation.GetProperty("messages"),
                kwargs.GetProperty("add_generation_prompt").GetBoolean(),
                kwargs.TryGetProperty("tools", out JsonElement t) ? t : null,
                extra);

        if (c.TryGetProperty("output", out JsonElement output))
        {
            Assert.Equal(output.GetString(), Render());
            return;
        }

        var expected = Enum.Parse<ChatTemplateErrorKind>(c.GetProperty("error").GetProperty("kind").GetString()!);
        var ex = Assert.Throws<ChatTemplateException>(Render);
        Assert.True(
            ex.Kind == expected || (expected == ChatTemplateErrorKind.Runtime && ex.Kind == ChatTemplateErrorKind.LimitExceeded),
            $"expected {expected} ({c.GetProperty("error").GetProperty("type")}), got {ex.Kind}: {ex.Message}");
    }
}
