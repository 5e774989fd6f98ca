using InferenceServer.OpenAi.ToolCalls;

namespace InferenceServer.Tests.OpenAi.ToolCalls;

public sealed class ToolCallParsersTests
{
    [Theory]
    [InlineData("qwen2.5-instruct", "Hermes", true)]
    [InlineData("llama-3.1-instruct", "Llama3Json", true)]
    [InlineData("deepseek-r1", "DeepSeek", false)]
    [InlineData("mistral-7b-instruct-v0.3", "None", false)]
    [InlineData("phi-3.5-mini-instruct", "None", false)]
    [InlineData("gemma-2-it", "None", false)]
    public void Describe_PublishedTemplates(string family, string formatName, bool rendersTools)
    {
        var format = Enum.Parse<ToolCallFormat>(formatName);
        var support = ToolCallParsers.Describe(ChatTemplateFixtures.Template(family));

        Assert.Equal(format, support.Format);
        Assert.Equal(rendersTools, support.RendersToolDefinitions);
        Assert.Equal(format == ToolCallFormat.None ? null : format, ToolCallParsers.ForTemplate(ChatTemplateFixtures.Template(family))?.Format);
    }

    [Theory]
    [InlineData("qwen2.5-instruct")]
    [InlineData("llama-3.1-instruct")]
    public void TemplatesThatSupportTools_RenderTheDefinitionAndTheCall(string family)
    {
        var output = ChatTemplateFixtures.ToolsOutput(family);

        Assert.True(ToolCallParsers.Describe(ChatTemplateFixtures.Template(family)).SupportsTools);
        Assert.Contains("Get the current weather in a city.", output, StringComparison.Ordinal);
        Assert.Contains("\"city\": \"Paris\"", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("mistral-7b-instruct-v0.3", "Conversation roles must alternate")]
    [InlineData("gemma-2-it", "Conversation roles must alternate")]
    public void TemplatesWithoutTools_RaiseOnTheToolsConversation(string family, string error)
    {
        var (output, raised) = ChatTemplateFixtures.Rendering(family, "tools");

        Assert.Null(output);
        Assert.Contains(error, raised, StringComparison.Ordinal);
        Assert.False(ToolCallParsers.Describe(ChatTemplateFixtures.Template(family)).SupportsTools);
    }

    [Fact]
    public void Phi35_SilentlyDropsToolsAndCalls()
    {
        // Phi-3.5 renders the tools conversation without error but without the definitions, the call or the result.
        var output = ChatTemplateFixtures.ToolsOutput("phi-3.5-mini-instruct");

        Assert.Equal("<|user|>\nWeather in Paris?<|end|>\n<|assistant|>\n<|end|>\n<|assistant|>\n", output);
        Assert.Null(ToolCallParsers.ForTemplate(ChatTemplateFixtures.Template("phi-3.5-mini-instruct")));
    }

    [Fact]
    public void DeepSeekR1_RendersCallsButNotDefinitions()
    {
        // The fixture's tools rendering fails only because it passes arguments as a dict; the template concatenates
        // them as the JSON string OpenAI clients send. It never reads `tools`, so the model is not shown them.
        var (_, raised) = ChatTemplateFixtures.Rendering("deepseek-r1", "tools");
        var support = ToolCallParsers.Describe(ChatTemplateFixtures.Template("deepseek-r1"));

        Assert.Contains("can only concatenate str", raised, StringComparison.Ordinal);
        Assert.Equal(ToolCallFormat.DeepSeek, support.Format);
        Assert.False(support.SupportsTools);
    }

    [Theory]
    // vLLM's examples/tool_chat_template_mistral.jinja (abridged to its call rendering).
    [InlineData("{% if tools %}{{ '[AVAILABLE_TOOLS]'+ tools|string + '[/AVAILABLE_TOOLS]' }}{% endif %}{{ '[TOOL_CALLS]' + message['content']|string + eos_token }}", "Mistral")]
    // vLLM's examples/tool_chat_template_llama3.1_json.jinja: no python tag, the ipython environment.
    [InlineData("{%- if tools is not none %}{{- \"Environment: ipython\\n\" }}{%- endif %}", "Llama3Json")]
    // A template that shows tools in some other way: the Hermes fallback.
    [InlineData("{% if tools %}<|system|>Functions: {{ tools | tojson }}<|end|>{% endif %}", "Hermes")]
    // Hermes 2 Pro style.
    [InlineData("{%- for tool in tools %}{{ tool | tojson }}{% endfor %}<tool_call>{\"arguments\": <args-dict>, \"name\": <function-name>}</tool_call>", "Hermes")]
    [InlineData("{% for tool_call in message.tool_calls %}{{ tool_call.name }}{% endfor %}", "None")]
    public void Describe_OtherTemplates(string template, string expected)
        => Assert.Equal(Enum.Parse<ToolCallFormat>(expected), ToolCallParsers.Describe(template).Format);

    [Fact]
    public void Create_GivesEachFormatItsParser()
    {
        foreach (var format in Enum.GetValues<ToolCallFormat>())
        {
            Assert.Equal(format == ToolCallFormat.None ? null : format, ToolCallParsers.Create(format)?.Format);
        }
    }

    [Fact]
    public void Ids_FollowOpenAiOrMistral()
    {
        var openAi = Enumerable.Range(0, 50).Select(_ => ToolCallIds.New(ToolCallFormat.Hermes)).ToList();

        Assert.All(openAi, id => Assert.Matches("^call_[A-Za-z0-9]{24}$", id));
        Assert.Equal(50, openAi.Distinct().Count());
        Assert.Matches("^[A-Za-z0-9]{9}$", ToolCallIds.New(ToolCallFormat.Mistral));
    }
}
