// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text.Json;

namespace InferenceServer.Templating.Tests;

/// <summary>Every real template x conversation renders exactly what transformers' Jinja2 rendered, or fails where it failed.</summary>
public class RealTemplateTests
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string family in TemplateFixtures.Families())
        {
            foreach (JsonElement rendering in TemplateFixtures.Renderings(family).GetProperty("renderings").EnumerateArray())
            {
                data.Add(family, rendering.GetProperty("scenario").GetString()!);
            }
        }

        return data;
    }

    [Fact]
    public void Fixtures_CoverSixFamiliesAndSixConversations()
    {
        Assert.Equal(6, TemplateFixtures.Families().Length);
        Assert.Equal(36, Cases().Count);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RealTemplate_RendersLikeTransformers(string family, string scenario)
    {
        JsonElement renderings = TemplateFixtures.Renderings(family);
        JsonElement rendering = renderings.GetProperty("renderings").EnumerateArray().Single(r => r.GetProperty("scenario").GetString() == scenario);
        ChatTemplateSet set = ChatTemplateSet.FromTemplateText(TemplateFixtures.Template(family), TemplateFixtures.ConfigJson(renderings));
        JsonElement kwargs = rendering.GetProperty("kwargs");
        JsonElement[] messages = rendering.GetProperty("messages").EnumerateArray().ToArray();
        bool addGenerationPrompt = kwargs.GetProperty("add_generation_prompt").GetBoolean();
        JsonElement? tools = kwargs.TryGetProperty("tools", out JsonElement t) ? t : null;
        var extra = new Dictionary<string, JsonElement> { ["date_string"] = renderings.GetProperty("date_string") };

        if (rendering.TryGetProperty("output", out JsonElement output))
        {
            Assert.Equal(output.GetString(), set.Render(messages, addGenerationPrompt, tools, extra));
            return;
        }

        string error = rendering.GetProperty("error").GetString()!;
        var ex = Assert.Throws<ChatTemplateException>(() => set.Render(messages, addGenerationPrompt, tools, extra));
        const string Raised = "TemplateError: ";
        if (error.StartsWith(Raised, StringComparison.Ordinal))
        {
            Assert.Equal(ChatTemplateErrorKind.RaisedByTemplate, ex.Kind);
            Assert.Equal(error[Raised.Length..], ex.Message);
        }
        else
        {
            Assert.Equal(ChatTemplateErrorKind.Runtime, ex.Kind);
            Assert.Contains(error, ex.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void RealTemplate_RenderIsFast()
    {
        JsonElement renderings = TemplateFixtures.Renderings("llama-3.1-instruct");
        JsonElement rendering = renderings.GetProperty("renderings").EnumerateArray().Single(r => r.GetProperty("scenario").GetString() == "tools");
        ChatTemplateSet set = ChatTemplateSet.FromTemplateText(TemplateFixtures.Template("llama-3.1-instruct"), TemplateFixtures.ConfigJson(renderings));
        JsonElement[] messages = rendering.GetProperty("messages").EnumerateArray().ToArray();
        JsonElement tools = rendering.GetProperty("kwargs").GetProperty("tools");
        for (int i = 0; i < 200; i++)
        {
            set.Render(messages, true, tools);
        }

        var watch = System.Diagnostics.Stopwatch.StartNew();
        const int Renders = 1000;
        for (int i = 0; i < Renders; i++)
        {
            set.Render(messages, true, tools);
        }

        // A render with tools (tojson with indent) takes tens of microseconds; 2 ms each would be far off.
        Assert.True(watch.Elapsed.TotalMilliseconds / Renders < 2, $"{watch.Elapsed.TotalMilliseconds / Renders} ms per render");
    }
}
