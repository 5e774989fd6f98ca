// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text.Json;

namespace InferenceServer.Templating.Tests;

/// <summary>
/// Differential tests against Jinja2 on random programs: ExpressionCases.json (operators, filters, tests and methods
/// over every value type) and StatementCases.json (statements and whitespace control) hold what Jinja2 printed or
/// raised for each (regenerate with generate_expression_cases.py and generate_statement_cases.py).
/// </summary>
public class RandomProgramTests
{
    private static readonly Dictionary<string, JsonElement> Documents = new()
    {
        ["ExpressionCases.json"] = Load("ExpressionCases.json"),
        ["StatementCases.json"] = Load("StatementCases.json"),
    };

    public static TheoryData<string, int> Indices()
    {
        var data = new TheoryData<string, int>();
        foreach ((string file, JsonElement document) in Documents)
        {
            for (int i = 0; i < document.GetProperty("cases").GetArrayLength(); i++)
            {
                data.Add(file, i);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Indices))]
    public void RandomProgram_RendersLikeJinja2(string file, int index)
    {
        JsonElement document = Documents[file];
        JsonElement c = document.GetProperty("cases")[index];
        string source = c.GetProperty("template").GetString()!;
        var context = new ChatTemplateContext();
        foreach (JsonProperty variable in document.GetProperty("variables").EnumerateObject())
        {
            context.Set(variable.Name, variable.Value);
        }

        if (c.TryGetProperty("output", out JsonElement output))
        {
            Assert.Equal(output.GetString(), ChatTemplate.Parse(source).Render(context));
            return;
        }

        JsonElement error = c.GetProperty("error");
        var kind = Enum.Parse<ChatTemplateErrorKind>(error.GetProperty("kind").GetString()!);
        var ex = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(source).Render(context));
        Assert.True(
            ex.Kind == kind || (kind == ChatTemplateErrorKind.Runtime && ex.Kind == ChatTemplateErrorKind.LimitExceeded),
            $"expected {kind} {error.GetProperty("type")}: {error.GetProperty("message")}, got {ex.Kind}: {ex.Message}");
    }

    private static JsonElement Load(string file)
        => JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, file))).RootElement;
}
