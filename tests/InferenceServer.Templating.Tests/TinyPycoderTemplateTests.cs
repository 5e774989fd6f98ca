// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text.Json;

namespace InferenceServer.Templating.Tests;

/// <summary>
/// The default model's chat template (models/tiny-pycoder/chat_template.jinja), rendered by this project's Jinja engine
/// as the server loads it: system and user messages become <c># </c> comment lines, assistant messages stay code,
/// messages are joined by newlines and the generation prompt is a newline.
/// </summary>
public class TinyPycoderTemplateTests
{
    private static readonly string Folder = Path.Combine(AppContext.BaseDirectory, "models", "tiny-pycoder");

    private static ChatTemplateSet Load() => ChatTemplateSet.FromTemplateText(
        File.ReadAllText(Path.Combine(Folder, "chat_template.jinja")),
        File.ReadAllText(Path.Combine(Folder, "tokenizer_config.json")));

    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement;

    [Theory]
    [InlineData("""[{"role":"user","content":"Sort a list."}]""", true, "# Sort a list.\n")]
    [InlineData("""[{"role":"user","content":"Sort a list."}]""", false, "# Sort a list.")]
    [InlineData(
        """[{"role":"system","content":"You write Python."},{"role":"user","content":"Return the n-th Fibonacci number.\n\nUse a loop.\n"}]""",
        true,
        "# You write Python.\n# Return the n-th Fibonacci number.\n#\n# Use a loop.\n")]
    [InlineData(
        """[{"role":"user","content":"Add two numbers."},{"role":"assistant","content":"def add(a, b):\n    return a + b"},{"role":"user","content":"Now three."}]""",
        true,
        "# Add two numbers.\ndef add(a, b):\n    return a + b\n# Now three.\n")]
    [InlineData("""[{"role":"user","content":"Complete:"},{"role":"assistant","content":"def f("}]""", false, "# Complete:\ndef f(")]
    [InlineData("""[{"role":"assistant","content":null},{"role":"user","content":""}]""", false, "\n#")]
    public void Conversation_RendersAsPythonComments(string messages, bool addGenerationPrompt, string expected)
        => Assert.Equal(expected, Load().Render(Json(messages), addGenerationPrompt));

    [Fact]
    public void ToolMessage_IsRefusedByTheTemplate()
    {
        var ex = Assert.Throws<ChatTemplateException>(() => Load().Render(Json("""[{"role":"tool","content":"x"}]"""), true));
        Assert.Equal(ChatTemplateErrorKind.RaisedByTemplate, ex.Kind);
        Assert.Contains("'tool'", ex.Message, StringComparison.Ordinal);
    }
}
