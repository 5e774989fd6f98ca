// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text.Json;

namespace InferenceServer.Templating.Tests;

/// <summary>Reading tokenizer_config.json and rendering a request as transformers' apply_chat_template does.</summary>
public class ChatTemplateSetTests
{
    private static readonly JsonElement[] OneUser = [JsonDocument.Parse("""{"role": "user", "content": "hi"}""").RootElement];

    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement;

    [Fact]
    public void StringTemplate_IsDefaultWithSpecialTokens()
    {
        const string Config = """
            {"bos_token": {"content": "<s>", "lstrip": false, "__type": "AddedToken"}, "eos_token": "</s>", "pad_token": null,
             "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}{{ pad_token is defined }}"}
            """;
        ChatTemplateSet set = ChatTemplateSet.FromTokenizerConfig(Config)!;
        Assert.Equal(["default"], set.TemplateNames);
        Assert.Equal("<s>", set.SpecialTokens["bos_token"]);
        Assert.False(set.SpecialTokens.ContainsKey("pad_token"));
        Assert.Equal("<s>hi</s>False", set.Render(OneUser, addGenerationPrompt: false));
    }

    [Fact]
    public void MessagesAsOneJsonArray_RenderTheSame()
    {
        ChatTemplateSet set = ChatTemplateSet.FromTemplateText("{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}", null);
        Assert.Equal("user:hi;", set.Render(Json("""[{"role": "user", "content": "hi"}]"""), false));
        Assert.Throws<ArgumentException>(() => set.Render(Json("""{"role": "user"}"""), false));
    }

    [Fact]
    public void NoChatTemplate_IsNull()
    {
        Assert.Null(ChatTemplateSet.FromTokenizerConfig("""{"eos_token": "</s>"}"""));
        Assert.Null(ChatTemplateSet.FromTokenizerConfig("""{"chat_template": null}"""));
    }

    [Fact]
    public void ListForm_PicksToolUseWhenToolsAreGiven()
    {
        const string Config = """
            {"chat_template": [{"name": "default", "template": "D{{ tools is none }}"}, {"name": "tool_use", "template": "T{{ tools|length }}"}]}
            """;
        ChatTemplateSet set = ChatTemplateSet.FromTokenizerConfig(Config)!;
        Assert.Equal("DTrue", set.Render(OneUser, false));
        Assert.Equal("DTrue", set.Render(OneUser, false, Json("null")));
        Assert.Equal("T2", set.Render(OneUser, false, Json("""[{"type": "function"}, {"type": "function"}]""")));
    }

    [Fact]
    public void ListForm_WithoutDefault_FailsClearly()
    {
        ChatTemplateSet set = ChatTemplateSet.FromTokenizerConfig("""{"chat_template": [{"name": "rag", "template": "x"}]}""")!;
        var ex = Assert.Throws<ChatTemplateException>(() => set.Render(OneUser, false));
        Assert.Equal(ChatTemplateErrorKind.Configuration, ex.Kind);
        Assert.Contains("'default'", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("[1, 2]")]
    [InlineData("""{"chat_template": 5}""")]
    [InlineData("""{"chat_template": [{"name": "default"}]}""")]
    [InlineData("""{"chat_template": "x", "bos_token": 3}""")]
    public void MalformedConfig_IsAConfigurationError(string json)
    {
        var ex = Assert.Throws<ChatTemplateException>(() => ChatTemplateSet.FromTokenizerConfig(json));
        Assert.Equal(ChatTemplateErrorKind.Configuration, ex.Kind);
    }

    [Fact]
    public void TemplateSyntaxError_InConfig_NamesTheTemplate()
    {
        var ex = Assert.Throws<ChatTemplateException>(() =>
            ChatTemplateSet.FromTokenizerConfig("""{"chat_template": [{"name": "tool_use", "template": "{% if %}"}]}"""));
        Assert.Equal(ChatTemplateErrorKind.Syntax, ex.Kind);
        Assert.Contains("chat template 'tool_use'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ExtraKwargs_ArePassedAndMayOverrideSpecialTokens()
    {
        ChatTemplateSet set = ChatTemplateSet.FromTemplateText("{{ bos_token }}|{{ date_string }}|{{ enable_thinking }}|{{ add_generation_prompt }}", """{"bos_token": "<s>"}""");
        var extra = new Dictionary<string, JsonElement> { ["date_string"] = Json("\"26 Jul 2024\""), ["enable_thinking"] = Json("false"), ["bos_token"] = Json("\"<B>\"") };
        Assert.Equal("<B>|26 Jul 2024|False|True", set.Render(OneUser, true, null, extra));
    }

    [Theory]
    [InlineData("messages")]
    [InlineData("tools")]
    [InlineData("add_generation_prompt")]
    public void ExtraKwargs_CannotReplaceReservedNames(string name)
    {
        ChatTemplateSet set = ChatTemplateSet.FromTemplateText("x", null);
        var extra = new Dictionary<string, JsonElement> { [name] = Json("1") };
        Assert.Throws<ArgumentException>(() => set.Render(OneUser, true, null, extra));
    }

    [Fact]
    public void ToolCallArguments_StayAsGiven()
    {
        ChatTemplateSet set = ChatTemplateSet.FromTemplateText("{% for m in messages %}{% for c in m.tool_calls %}{{ c.function.arguments is mapping }}:{{ c.function.arguments|tojson }};{% endfor %}{% endfor %}", null);
        JsonElement[] messages =
        [
            Json("""{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"city": "Paris"}}}]}"""),
            Json("""{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{\"city\": \"Paris\"}"}}]}"""),
        ];
        Assert.Equal("True:{\"city\": \"Paris\"};False:\"{\\\"city\\\": \\\"Paris\\\"}\";", set.Render(messages, false));
    }
}
