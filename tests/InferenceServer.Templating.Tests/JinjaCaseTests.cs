// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text.Json;

namespace InferenceServer.Templating.Tests;

/// <summary>
/// The engine's features against Python's Jinja2: JinjaCases.json holds templates exercising each statement,
/// filter, test, whitespace rule, value printing and error, with what Jinja2 3.1 rendered in transformers'
/// environment (regenerate with generate_jinja_cases.py).
/// </summary>
public class JinjaCaseTests
{
    private static readonly Lazy<JsonElement> Document = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "JinjaCases.json"))).RootElement);

    internal static readonly DateTimeOffset Now = new(2024, 7, 26, 14, 5, 9, TimeSpan.Zero);

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (JsonElement c in Document.Value.GetProperty("cases").EnumerateArray())
        {
            data.Add(c.GetProperty("name").GetString()!);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Feature_MatchesJinja2(string name)
    {
        JsonElement c = Document.Value.GetProperty("cases").EnumerateArray().Single(x => x.GetProperty("name").GetString() == name);
        string source = c.GetProperty("template").GetString()!;
        var context = new ChatTemplateContext(new ChatTemplateOptions { TimeProvider = new FixedTimeProvider(Now) });
        foreach (JsonProperty variable in c.GetProperty("variables").EnumerateObject())
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
        string message = error.GetProperty("message").GetString()!;
        var ex = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(source).Render(context));
        if (kind == ChatTemplateErrorKind.Syntax)
        {
            Assert.Equal(ChatTemplateErrorKind.Syntax, ex.Kind);
            Assert.Equal(error.GetProperty("line").GetInt32(), ex.Line);
            return;
        }

        if (kind == ChatTemplateErrorKind.RaisedByTemplate)
        {
            Assert.Equal(ChatTemplateErrorKind.RaisedByTemplate, ex.Kind);
            Assert.Equal(message, ex.Message);
            return;
        }

        Assert.True(ex.Kind is ChatTemplateErrorKind.Runtime or ChatTemplateErrorKind.LimitExceeded, ex.Kind.ToString());
        Assert.Contains(error.GetProperty("type").GetString() + ": " + message, ex.Message, StringComparison.Ordinal);
    }
}
