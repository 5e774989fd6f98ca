using System.ClientModel;
using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;
using OpenAI.Chat;

namespace InferenceServer.FunctionalTests;

/// <summary><c>/v1/chat/completions</c> through the official OpenAI .NET client, on the default model with a chat template added.</summary>
public sealed class ChatCompletionsTests(ChatModelServer fixture) : IClassFixture<ChatModelServer>
{
    private TestServer Server => fixture.Server;

    private ChatClient Chat => Server.OpenAI.GetChatClient("tiny-pycoder");

    private static readonly ChatMessage[] Conversation = [new SystemChatMessage("You write Python."), new UserChatMessage("def fibonacci(n):")];

    [Fact]
    public async Task Chat_HasOpenAiShape_AndCountsTheRenderedPrompt()
    {
        ChatCompletion completion = await Chat.CompleteChatAsync(Conversation, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 });
        Assert.StartsWith("chatcmpl-", completion.Id);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(8, completion.Usage.OutputTokenCount);
        Assert.NotEmpty(completion.Content[0].Text);

        // The prompt is the ChatML rendering: /tokenize with the same messages counts the same tokens.
        var tokenized = await Server.PostRawAsync("/tokenize", """{"messages":[{"role":"system","content":"You write Python."},{"role":"user","content":"def fibonacci(n):"}]}""");
        Assert.Equal(200, tokenized.Status);
        Assert.Equal(tokenized.Body.GetProperty("count").GetInt32(), completion.Usage.InputTokenCount);
    }

    [Fact]
    public async Task Streamed_EqualsNonStreamed_WithRoleFirstAndUsageLast()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12, StopSequences = { "\n\n\n" } };
        ChatCompletion whole = await Chat.CompleteChatAsync(Conversation, options);
        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        var roleSeen = false;
        await foreach (var update in Chat.CompleteChatStreamingAsync(Conversation, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12, StopSequences = { "\n\n\n" } }))
        {
            roleSeen |= update.Role == ChatMessageRole.Assistant;
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }

        Assert.True(roleSeen);
        Assert.Equal(whole.Content[0].Text, text.ToString());
        Assert.Equal(whole.FinishReason, finish);
        Assert.NotNull(usage);
        Assert.Equal(whole.Usage.OutputTokenCount, usage.OutputTokenCount);
    }

    [Fact]
    public async Task Logprobs_ArePerTokenWithSortedAlternatives()
    {
        ChatCompletion completion = await Chat.CompleteChatAsync(Conversation, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 6, IncludeLogProbabilities = true, TopLogProbabilityCount = 3 });
        Assert.Equal(6, completion.ContentTokenLogProbabilities.Count);
        foreach (var token in completion.ContentTokenLogProbabilities)
        {
            Assert.True(token.LogProbability <= 0);
            Assert.Equal(3, token.TopLogProbabilities.Count);
            Assert.True(token.TopLogProbabilities[0].LogProbability >= token.TopLogProbabilities[1].LogProbability);

            // Greedy: the chosen token is the most likely one.
            Assert.Equal(token.TopLogProbabilities[0].LogProbability, token.LogProbability, 5);
            Assert.Equal(token.TopLogProbabilities[0].Token, token.Token);
            Assert.Equal(System.Text.Encoding.UTF8.GetBytes(token.Token), token.Utf8Bytes!.Value.ToArray());
        }

        Assert.Equal(completion.Content[0].Text, string.Concat(completion.ContentTokenLogProbabilities.Select(t => t.Token)));
    }

    [Fact]
    public async Task JsonSchema_OutputParsesAndMatches()
    {
        var schema = BinaryData.FromString("""{"type":"object","properties":{"language":{"enum":["python","c"]},"typed":{"type":"boolean"},"year":{"type":"integer"}},"required":["language","typed","year"],"additionalProperties":false}""");
        ChatCompletion completion = await Chat.CompleteChatAsync(Conversation, new ChatCompletionOptions
        {
            Temperature = 0,
            MaxOutputTokenCount = 60,
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("lang", schema, jsonSchemaIsStrict: true),
        });
        using var document = JsonDocument.Parse(completion.Content[0].Text);
        var root = document.RootElement;
        Assert.Contains(root.GetProperty("language").GetString(), new[] { "python", "c" });
        Assert.True(root.GetProperty("typed").ValueKind is JsonValueKind.True or JsonValueKind.False);
        _ = root.GetProperty("year").GetInt64();
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
    }

    [Fact]
    public async Task JsonObject_OutputIsAnObject_StreamedToo()
    {
        var events = await Server.StreamAsync("""{"messages":[{"role":"user","content":"Give me JSON"}],"temperature":0,"max_tokens":80,"response_format":{"type":"json_object"},"stream":true}""", "/v1/chat/completions");
        var text = string.Concat(events.Where(e => e != "[DONE]").Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")).Where(c => c.GetArrayLength() > 0)
            .Select(c => c[0].GetProperty("delta")).Where(d => d.TryGetProperty("content", out _)).Select(d => d.GetProperty("content").GetString()));
        var finish = events.Where(e => e != "[DONE]").Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0]).Last().GetProperty("finish_reason").GetString();
        if (finish == "stop")
        {
            using var document = JsonDocument.Parse(text);
            Assert.Equal(JsonValueKind.Object, document.RootElement.ValueKind);
        }
        else
        {
            // Cut by max_tokens: still a valid prefix of an object.
            Assert.Equal("length", finish);
            Assert.StartsWith("{", text.TrimStart());
        }
    }

    [Fact]
    public async Task NamedToolChoice_ForcesACallWithSchemaArguments()
    {
        var tool = ChatTool.CreateFunctionTool("set_mode", "Sets the mode", BinaryData.FromString("""{"type":"object","properties":{"mode":{"enum":["fast","safe"]},"retries":{"type":"integer"}},"required":["mode","retries"]}"""));
        ChatCompletion completion = await Chat.CompleteChatAsync(Conversation, new ChatCompletionOptions
        {
            Temperature = 0,
            MaxOutputTokenCount = 40,
            Tools = { tool },
            ToolChoice = ChatToolChoice.CreateFunctionChoice("set_mode"),
        });
        var call = Assert.Single(completion.ToolCalls);
        Assert.Equal("set_mode", call.FunctionName);
        Assert.StartsWith("call_", call.Id);
        using var arguments = JsonDocument.Parse(call.FunctionArguments);
        Assert.Contains(arguments.RootElement.GetProperty("mode").GetString(), new[] { "fast", "safe" });
        _ = arguments.RootElement.GetProperty("retries").GetInt64();
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
    }

    [Fact]
    public async Task RequiredToolChoice_CallsADeclaredTool_StreamedAsOneDelta()
    {
        const string Body = """{"messages":[{"role":"user","content":"go"}],"temperature":0,"max_tokens":60,"stream":true,"tools":[{"type":"function","function":{"name":"ping","parameters":{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]}}}],"tool_choice":"required"}""";
        var events = (await Server.StreamAsync(Body, "/v1/chat/completions")).Where(e => e != "[DONE]").Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0]).ToList();
        var calls = events.Where(c => c.GetProperty("delta").TryGetProperty("tool_calls", out _)).ToList();
        var call = Assert.Single(calls).GetProperty("delta").GetProperty("tool_calls")[0];
        Assert.Equal(0, call.GetProperty("index").GetInt32());
        Assert.Equal("ping", call.GetProperty("function").GetProperty("name").GetString());
        using var arguments = JsonDocument.Parse(call.GetProperty("function").GetProperty("arguments").GetString()!);
        Assert.True(arguments.RootElement.GetProperty("ok").ValueKind is JsonValueKind.True or JsonValueKind.False);
        Assert.Equal("tool_calls", events[^1].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task AssistantToolCallsAndToolResults_RenderThroughTheTemplate()
    {
        const string Body = """
            {"messages":[
              {"role":"user","content":"weather?"},
              {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]},
              {"role":"tool","tool_call_id":"call_1","content":"sunny"}],
             "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
             "temperature":0,"max_tokens":3}
            """;
        var response = await Server.CompleteAsync(Body, "/v1/chat/completions");
        Assert.Equal(3, response.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        // The rendered prompt holds the call's arguments as an object and the tool result.
        var tokenized = await Server.PostRawAsync("/tokenize", Body.Replace("\"temperature\":0,\"max_tokens\":3", "\"return_token_strs\":false"));
        Assert.Equal(response.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), tokenized.Body.GetProperty("count").GetInt32());
        var detokenized = await Server.PostRawAsync("/detokenize", $$"""{"tokens":{{tokenized.Body.GetProperty("tokens").GetRawText()}}}""");
        var prompt = detokenized.Body.GetProperty("prompt").GetString()!;
        Assert.Contains("{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}", prompt);
        Assert.Contains("<tool_response>\nsunny\n</tool_response>", prompt);
    }

    [Fact]
    public async Task AutoTools_StreamedContent_EqualsNonStreamed()
    {
        // tool_choice "auto": the stream holds back text that may start a call and releases it once it cannot.
        const string Body = """{"messages":[{"role":"user","content":"def fibonacci(n):"}],"tools":[{"type":"function","function":{"name":"ping","parameters":{"type":"object"}}}],"temperature":0,"max_tokens":40""";
        var whole = await Server.CompleteAsync(Body + "}", "/v1/chat/completions");
        var message = whole.GetProperty("choices")[0].GetProperty("message");
        var events = (await Server.StreamAsync(Body + ",\"stream\":true}", "/v1/chat/completions")).Where(e => e != "[DONE]").Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0]).ToList();
        var streamed = string.Concat(events.Select(c => c.GetProperty("delta")).Where(d => d.TryGetProperty("content", out var p) && p.ValueKind == JsonValueKind.String).Select(d => d.GetProperty("content").GetString()));
        Assert.False(message.TryGetProperty("tool_calls", out _));
        Assert.Equal(message.GetProperty("content").GetString(), streamed);
        Assert.Equal(whole.GetProperty("choices")[0].GetProperty("finish_reason").GetString(), events[^1].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Timeout_StillApplies_WhenToolCallsAreParsed()
    {
        // With tools in "auto" mode the settings are copied to keep special tokens; the copy must keep the deadline.
        const string Body = """{"messages":[{"role":"user","content":"go"}],"tools":[{"type":"function","function":{"name":"ping","parameters":{"type":"object"}}}],"temperature":0,"max_tokens":1800,"ignore_eos":true,"timeout":0.05}""";
        var (status, error) = await Server.PostRawAsync("/v1/chat/completions", Body);
        Assert.Equal(504, status);
        Assert.Equal("timeout", error.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task SeededSampling_IsReproducible_AndNChoicesDiffer()
    {
        const string Body = """{"messages":[{"role":"user","content":"hi"}],"temperature":1.0,"top_p":0.95,"top_k":50,"min_p":0.01,"seed":7,"n":3,"max_completion_tokens":10,"presence_penalty":0.5,"frequency_penalty":0.5,"repetition_penalty":1.1}""";
        var first = await Server.CompleteAsync(Body, "/v1/chat/completions");
        var second = await Server.CompleteAsync(Body, "/v1/chat/completions");
        string[] Texts(JsonElement r) => r.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("message").GetProperty("content").GetString()!).ToArray();
        Assert.Equal(Texts(first), Texts(second));
        Assert.Equal(3, Texts(first).Length);
        Assert.True(Texts(first).Distinct().Count() > 1);
    }

    [Fact]
    public async Task LogitBias_ForcesAToken()
    {
        var response = await Server.CompleteAsync("""{"messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":4,"logit_bias":{"300":100},"return_token_ids":true}""", "/v1/chat/completions");
        Assert.Equal([300, 300, 300, 300], response.GetProperty("choices")[0].GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()));
    }

    [Theory]
    [InlineData("""{"max_tokens":3}""", "messages")]
    [InlineData("""{"messages":[]}""", "messages")]
    [InlineData("""{"messages":"hi"}""", "messages")]
    [InlineData("""{"messages":[{"content":"x"}]}""", "messages[0].role")]
    [InlineData("""{"messages":[{"role":"wizard","content":"x"}]}""", "messages[0].role")]
    [InlineData("""{"messages":[{"role":"user","content":5}]}""", "messages[0].content")]
    [InlineData("""{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}""", "messages[0].content[0].type")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"top_logprobs":2}""", "top_logprobs")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21}""", "top_logprobs")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"bad name"}}]}""", "tools[0].function.name")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":{"type":"function","function":{"name":"b"}}}""", "tool_choice.function.name")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"tool_choice":"required"}""", "tool_choice")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"string","pattern":"^a+$"}}}}""", "response_format.json_schema.schema")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"chat_template_kwargs":[1]}""", "chat_template_kwargs")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"chat_template":"{{ messages[0].content }}"}""", "chat_template")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"max_completion_tokens":0}""", "max_completion_tokens")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"temperature":-1}""", "temperature")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"functions":[]}""", "functions")]
    public async Task BadInput_Is400NamingTheParameter(string body, string param)
    {
        var (status, error) = await Server.PostRawAsync("/v1/chat/completions", body);
        Assert.Equal(400, status);
        Assert.Equal(param, error.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("error").GetProperty("type").GetString());

        // Nothing leaked: the pool is whole again once the engine is idle.
        Assert.Equal(0, Server.Scheduler.ActiveRequests);
    }
}

/// <summary>
/// Chat on a fresh server with the default model: its own template (models/tiny-pycoder/chat_template.jinja) turns the
/// conversation into Python comments the model continues, so the official client works out of the box.
/// </summary>
public sealed class DefaultModelChatTests(DefaultModelServer fixture) : IClassFixture<DefaultModelServer>
{
    [Fact]
    public async Task Chat_Works_AndThePromptIsTheConversationAsComments()
    {
        ChatCompletion completion = await fixture.Server.OpenAI.GetChatClient("tiny-pycoder").CompleteChatAsync(
            [new SystemChatMessage("You write Python."), new UserChatMessage("Return the n-th Fibonacci number.")],
            new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 6 });
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(6, completion.Usage.OutputTokenCount);
        Assert.NotEmpty(completion.Content[0].Text);

        // The rendered prompt is exactly the comment block and the newline the answer starts on.
        var tokenized = await fixture.Server.PostRawAsync("/tokenize", """{"prompt":"# You write Python.\n# Return the n-th Fibonacci number.\n","add_special_tokens":false}""");
        Assert.Equal(tokenized.Body.GetProperty("count").GetInt32(), completion.Usage.InputTokenCount);
    }

    [Fact]
    public async Task Responses_Work_OutOfTheBox()
    {
#pragma warning disable OPENAI001 // The Responses client is marked experimental in OpenAI 2.15.0.
        var options = new OpenAI.Responses.CreateResponseOptions { Model = "tiny-pycoder", MaxOutputTokenCount = 16 };
        options.InputItems.Add(OpenAI.Responses.ResponseItem.CreateUserMessageItem("Sort a list of numbers."));
        var response = await fixture.Server.OpenAI.GetResponsesClient().CreateResponseAsync(options);
#pragma warning restore OPENAI001
        Assert.NotEmpty(response.Value.GetOutputText());
    }

    [Fact]
    public async Task ToolMessages_AreRefusedByTheTemplate()
    {
        var (status, error) = await fixture.Server.PostRawAsync("/v1/chat/completions", """{"messages":[{"role":"user","content":"x"},{"role":"tool","tool_call_id":"c","content":"y"}]}""");
        Assert.Equal(400, status);
        Assert.Contains("system, user and assistant", error.GetProperty("error").GetProperty("message").GetString());
    }
}
