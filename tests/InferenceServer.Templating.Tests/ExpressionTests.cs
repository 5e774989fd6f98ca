// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text.Json;

namespace InferenceServer.Templating.Tests;

/// <summary>
/// Differential test against Jinja2 on random expressions (operators, filters, tests, methods over every value type):
/// ExpressionCases.json holds what Jinja2 printed or raised for each (regenerate with generate_expression_cases.py).
/// </summary>
public class ExpressionTests
{
    private static readonly Lazy<JsonElement> Document = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "ExpressionCases.json"))).RootElement);

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
    public void RandomExpression_PrintsLikeJinja2(int index)
    {
        JsonElement c = Document.Value.GetProperty("cases")[index];
        string source = c.GetProperty("template").GetString()!;
        var context = new ChatTemplateContext();
        foreach (JsonProperty variable in Document.Value.GetProperty("variables").EnumerateObject())
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
}
