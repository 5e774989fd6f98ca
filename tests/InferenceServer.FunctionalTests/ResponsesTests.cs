using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;
using OpenAI.Responses;

#pragma warning disable OPENAI001 // The Responses client is marked experimental in OpenAI 2.15.0.

namespace InferenceServer.FunctionalTests;

/// <summary>
/// <c>/v1/responses</c> through the official OpenAI .NET client's <see cref="ResponsesClient"/>, on the default model
/// with Qwen 2.5's chat template (which renders tools): plain and streamed text, function tools both ways, structured
/// output, and bad input.
/// </summary>
public sealed class ResponsesTests(ChatModelServer fixture) : IClassFixture<ChatModelServer>
{
    private const string Model = "tiny-pycoder";

    private TestServer Server => fixture.Server;

    private ResponsesClient Client => Server.OpenAI.GetResponsesClient();

    private static CreateResponseOptions Options(int maxTokens, params ResponseItem[] input)
    {
        var options = new CreateResponseOptions { Model = Model, Temperature = 0, MaxOutputTokenCount = maxTokens, Instructions = "You write Python." };
        foreach (var item in input)
        {
            options.InputItems.Add(item);
        }

        return options;
    }

    [Fact]
    public async Task Text_HasResponseShape_AndEqualsTheChatCompletionOfTheSameConversation()
    {
        ResponseResult response = await Client.CreateResponseAsync(Options(8, ResponseItem.CreateUserMessageItem("def fibonacci(n):")));
        Assert.Equal("resp_", response.Id[..5]);
        Assert.Equal(ResponseStatus.Incomplete, response.Status);
        Assert.Equal(ResponseIncompleteStatusReason.MaxOutputTokens, response.IncompleteStatusDetails.Reason);
        Assert.Equal(8, response.Usage.OutputTokenCount);
        Assert.Equal(response.Usage.InputTokenCount + 8, response.Usage.TotalTokenCount);
        var message = Assert.IsAssignableFrom<MessageResponseItem>(Assert.Single(response.OutputItems));
        Assert.Equal(MessageRole.Assistant, message.Role);
        Assert.NotEmpty(response.GetOutputText());

        // The same conversation as a chat completion: the same prompt (instructions first, as a system message) and the same greedy text.
        var chat = await Server.CompleteAsync("""{"messages":[{"role":"system","content":"You write Python."},{"role":"user","content":"def fibonacci(n):"}],"temperature":0,"max_tokens":8}""", "/v1/chat/completions");
        Assert.Equal(chat.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), response.Usage.InputTokenCount);
        Assert.Equal(chat.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(), response.GetOutputText());
    }

    [Fact]
    public async Task StringInput_IsOneUserMessage()
    {
        var raw = await Server.CompleteAsync("""{"model":"tiny-pycoder","input":"def fibonacci(n):","temperature":0,"max_output_tokens":4,"store":true,"metadata":{"k":"v"}}""", "/v1/responses");
        var chat = await Server.CompleteAsync("""{"messages":[{"role":"user","content":"def fibonacci(n):"}],"temperature":0,"max_tokens":4}""", "/v1/chat/completions");
        Assert.Equal(chat.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), raw.GetProperty("usage").GetProperty("input_tokens").GetInt32());
        Assert.Equal("response", raw.GetProperty("object").GetString());
        Assert.Equal("v", raw.GetProperty("metadata").GetProperty("k").GetString());
        Assert.Equal(JsonValueKind.Null, raw.GetProperty("instructions").ValueKind);
    }

    [Fact]
    public async Task Streamed_EqualsNonStreamed_ThroughTheOfficialClient()
    {
        ResponseResult whole = await Client.CreateResponseAsync(Options(12, ResponseItem.CreateUserMessageItem("def fibonacci(n):")));
        var options = Options(12, ResponseItem.CreateUserMessageItem("def fibonacci(n):"));
        options.StreamingEnabled = true;
        var text = new StringBuilder();
        var sequence = new List<int>();
        ResponseResult? last = null;
        await foreach (var update in await Client.CreateResponseStreamingAsync(options))
        {
            sequence.Add(update.SequenceNumber);
            switch (update)
            {
                case StreamingResponseOutputTextDeltaUpdate delta:
                    text.Append(delta.Delta);
                    break;
                case StreamingResponseIncompleteUpdate incomplete:
                    last = incomplete.Response;
                    break;
                case StreamingResponseCompletedUpdate completed:
                    last = completed.Response;
                    break;
            }
        }

        Assert.Equal(Enumerable.Range(0, sequence.Count), sequence);
        Assert.Equal(whole.GetOutputText(), text.ToString());
        Assert.NotNull(last);
        Assert.Equal(whole.Status, last.Status);
        Assert.Equal(whole.GetOutputText(), last.GetOutputText());
        Assert.Equal(whole.Usage.InputTokenCount, last.Usage.InputTokenCount);
        Assert.Equal(whole.Usage.OutputTokenCount, last.Usage.OutputTokenCount);
    }

    [Fact]
    public async Task Streamed_EventsComeInTheApisOrder_WithSequenceNumbers()
    {
        var events = (await Server.StreamAsync("""{"input":"def f(x):","temperature":0,"max_output_tokens":6,"stream":true}""", "/v1/responses"))
            .Select(e => JsonDocument.Parse(e).RootElement).ToList();
        var types = events.Select(e => e.GetProperty("type").GetString()!).ToList();
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.GetProperty("sequence_number").GetInt32()));
        Assert.Equal(["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"], types.Take(4));
        Assert.Equal(["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.incomplete"], types.TakeLast(4));
        Assert.All(types.Skip(4).SkipLast(4), t => Assert.Equal("response.output_text.delta", t));
        var deltas = string.Concat(events.Where(e => e.GetProperty("type").GetString() == "response.output_text.delta").Select(e => e.GetProperty("delta").GetString()));
        Assert.Equal(deltas, events[^4].GetProperty("text").GetString());
        Assert.Equal("in_progress", events[0].GetProperty("response").GetProperty("status").GetString());
        Assert.Equal("max_output_tokens", events[^1].GetProperty("response").GetProperty("incomplete_details").GetProperty("reason").GetString());
        Assert.False(events.Any(e => e.ValueKind != JsonValueKind.Object), "no [DONE] marker: the Responses stream ends with its last event");
    }

    [Fact]
    public async Task NamedFunction_IsAFunctionCallItemWithSchemaArguments()
    {
        var options = Options(40, ResponseItem.CreateUserMessageItem("def fibonacci(n):"));
        options.Tools.Add(ResponseTool.CreateFunctionTool("set_mode", BinaryData.FromString("""{"type":"object","properties":{"mode":{"enum":["fast","safe"]},"retries":{"type":"integer"}},"required":["mode","retries"]}"""), strictModeEnabled: null, functionDescription: "Sets the mode"));
        options.ToolChoice = ResponseToolChoice.CreateFunctionChoice("set_mode");
        ResponseResult response = await Client.CreateResponseAsync(options);
        var call = Assert.IsType<FunctionCallResponseItem>(Assert.Single(response.OutputItems));
        Assert.Equal("set_mode", call.FunctionName);
        Assert.StartsWith("call_", call.CallId);
        Assert.StartsWith("fc_", call.Id);
        using var arguments = JsonDocument.Parse(call.FunctionArguments.ToString());
        Assert.Contains(arguments.RootElement.GetProperty("mode").GetString(), new[] { "fast", "safe" });
        _ = arguments.RootElement.GetProperty("retries").GetInt64();
        Assert.Equal(ResponseStatus.Completed, response.Status);
    }

    [Fact]
    public async Task RequiredTool_Streamed_IsOneFunctionCallItemWithItsArgumentEvents()
    {
        const string Body = """{"input":"go","temperature":0,"max_output_tokens":60,"stream":true,"tools":[{"type":"function","name":"ping","parameters":{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]}}],"tool_choice":"required"}""";
        var events = (await Server.StreamAsync(Body, "/v1/responses")).Select(e => JsonDocument.Parse(e).RootElement).ToList();
        var types = events.Select(e => e.GetProperty("type").GetString()).ToList();
        Assert.Equal(["response.created", "response.in_progress", "response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.done", "response.output_item.done", "response.completed"], types);
        var item = events[5].GetProperty("item");
        Assert.Equal("function_call", item.GetProperty("type").GetString());
        Assert.Equal("ping", item.GetProperty("name").GetString());
        using var arguments = JsonDocument.Parse(item.GetProperty("arguments").GetString()!);
        Assert.True(arguments.RootElement.GetProperty("ok").ValueKind is JsonValueKind.True or JsonValueKind.False);
        Assert.Equal(events[3].GetProperty("delta").GetString(), item.GetProperty("arguments").GetString());
        var output = Assert.Single(events[^1].GetProperty("response").GetProperty("output").EnumerateArray());
        Assert.Equal(item.GetProperty("call_id").GetString(), output.GetProperty("call_id").GetString());
    }

    [Fact]
    public async Task FunctionCallAndItsOutput_GoBackIntoTheConversation()
    {
        var options = Options(3,
            ResponseItem.CreateUserMessageItem("weather?"),
            ResponseItem.CreateFunctionCallItem("call_1", "get_weather", BinaryData.FromString("""{"city": "Paris"}""")),
            ResponseItem.CreateFunctionCallOutputItem("call_1", "sunny"));
        options.Tools.Add(ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}}}"""), strictModeEnabled: null));
        ResponseResult sdk = await Client.CreateResponseAsync(options);
        Assert.Equal(3, sdk.Usage.OutputTokenCount);

        // The prompt is the chat rendering of the same turns: the call (arguments as an object) and the tool result.
        const string Body = """
            {"instructions":"You write Python.","input":[
              {"role":"user","content":[{"type":"input_text","text":"weather?"}]},
              {"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\": \"Paris\"}"},
              {"type":"function_call_output","call_id":"call_1","output":"sunny"}],
             "tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}],
             "temperature":0,"max_output_tokens":3}
            """;
        var response = await Server.CompleteAsync(Body, "/v1/responses");
        const string Chat = """
            {"messages":[
              {"role":"system","content":"You write Python."},
              {"role":"user","content":"weather?"},
              {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]},
              {"role":"tool","tool_call_id":"call_1","content":"sunny"}],
             "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}
            """;
        var tokenized = await Server.PostRawAsync("/tokenize", Chat);
        Assert.Equal(tokenized.Body.GetProperty("count").GetInt32(), response.GetProperty("usage").GetProperty("input_tokens").GetInt32());
        var detokenized = await Server.PostRawAsync("/detokenize", $$"""{"tokens":{{tokenized.Body.GetProperty("tokens").GetRawText()}}}""");
        Assert.Contains("<tool_response>\nsunny\n</tool_response>", detokenized.Body.GetProperty("prompt").GetString());
    }

    [Fact]
    public async Task JsonSchemaFormat_ConstrainsTheText()
    {
        var options = Options(120, ResponseItem.CreateUserMessageItem("A point."));
        options.TextOptions = new ResponseTextOptions
        {
            TextFormat = ResponseTextFormat.CreateJsonSchemaFormat("point", BinaryData.FromString("""{"type":"object","properties":{"x":{"type":"integer"},"y":{"type":"integer"}},"required":["x","y"],"additionalProperties":false}"""), jsonSchemaFormatDescription: null, jsonSchemaIsStrict: true),
        };
        ResponseResult response = await Client.CreateResponseAsync(options);
        var text = response.GetOutputText();
        if (response.Status == ResponseStatus.Completed)
        {
            using var json = JsonDocument.Parse(text);
            _ = json.RootElement.GetProperty("x").GetInt64();
            _ = json.RootElement.GetProperty("y").GetInt64();
            Assert.Equal(2, json.RootElement.EnumerateObject().Count());
        }
        else
        {
            // Cut by max_output_tokens: still the prefix of an object.
            Assert.StartsWith("{", text.TrimStart());
        }

        var echoed = await Server.CompleteAsync("""{"input":"A point.","max_output_tokens":60,"temperature":0,"text":{"format":{"type":"json_object"}}}""", "/v1/responses");
        Assert.Equal("json_object", echoed.GetProperty("text").GetProperty("format").GetProperty("type").GetString());
        Assert.StartsWith("{", echoed.GetProperty("output")[0].GetProperty("content")[0].GetProperty("text").GetString()!.TrimStart());
    }

    [Fact]
    public async Task PreviousResponseId_IsA400_ThroughTheOfficialClient()
    {
        var exception = await Assert.ThrowsAsync<ClientResultException>(() => Client.CreateResponseAsync(Model, "hi", previousResponseId: "resp_earlier"));
        Assert.Equal(400, exception.Status);
        Assert.Contains("stateless", exception.Message);
    }

    [Theory]
    [InlineData("""{"max_output_tokens":3}""", "input")]
    [InlineData("""{"input":""}""", "input")]
    [InlineData("""{"input":[]}""", "input")]
    [InlineData("""{"input":5}""", "input")]
    [InlineData("""{"input":"x","previous_response_id":"resp_1"}""", "previous_response_id")]
    [InlineData("""{"input":"x","conversation":"conv_1"}""", "conversation")]
    [InlineData("""{"input":"x","background":true}""", "background")]
    [InlineData("""{"input":"x","store":"yes"}""", "store")]
    [InlineData("""{"input":"x","instructions":7}""", "instructions")]
    [InlineData("""{"input":[{"role":"wizard","content":"x"}]}""", "input[0].role")]
    [InlineData("""{"input":[{"role":"user"}]}""", "input[0].content")]
    [InlineData("""{"input":[{"role":"user","content":[{"type":"input_image","image_url":"x"}]}]}""", "input[0].content[0].type")]
    [InlineData("""{"input":[{"type":"function_call_output","output":"x"}]}""", "input[0].call_id")]
    [InlineData("""{"input":[{"type":"function_call","call_id":"c","name":"f"}]}""", "input[0].arguments")]
    [InlineData("""{"input":[{"type":"item_reference","id":"msg_1"}]}""", "input[0].type")]
    [InlineData("""{"input":"x","max_output_tokens":0}""", "max_output_tokens")]
    [InlineData("""{"input":"x","max_output_tokens":100000}""", "max_output_tokens")]
    [InlineData("""{"input":"x","temperature":"hot"}""", "temperature")]
    [InlineData("""{"input":"x","top_p":2}""", "top_p")]
    [InlineData("""{"input":"x","stream":"yes"}""", "stream")]
    [InlineData("""{"input":"x","tools":{}}""", "tools")]
    [InlineData("""{"input":"x","tools":[{"type":"web_search"}]}""", "tools[0].type")]
    [InlineData("""{"input":"x","tools":[{"type":"function","name":"bad name"}]}""", "tools[0].name")]
    [InlineData("""{"input":"x","tools":[{"type":"function","name":"a"}],"tool_choice":{"type":"function","name":"b"}}""", "tool_choice.name")]
    [InlineData("""{"input":"x","tool_choice":"required"}""", "tool_choice")]
    [InlineData("""{"input":"x","text":{"format":{"type":"yaml"}}}""", "text.format.type")]
    [InlineData("""{"input":"x","text":{"format":{"type":"json_schema","name":"a","schema":{"type":"string","pattern":"^a+$"}}}}""", "text.format.schema")]
    [InlineData("""{"input":"x","text":5}""", "text")]
    public async Task BadInput_Is400NamingTheParameter(string body, string param)
    {
        var (status, error) = await Server.PostRawAsync("/v1/responses", body);
        Assert.Equal(400, status);
        Assert.Equal(param, error.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal(0, Server.Scheduler.ActiveRequests);
    }

    [Fact]
    public async Task UnknownModel_Is404ModelNotFound_AsOnTheOtherRoutes()
    {
        var (status, error) = await Server.PostRawAsync("/v1/responses", """{"model":"gpt-5","input":"x"}""");
        Assert.Equal(404, status);
        Assert.Equal("model_not_found", error.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("model", error.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task Deadline_IsA504_AsOnTheOtherRoutes()
    {
        var (status, error) = await Server.PostRawAsync("/v1/responses", """{"input":"go","temperature":0,"max_output_tokens":1800,"ignore_eos":true,"timeout":0.05}""");
        Assert.Equal(504, status);
        Assert.Equal("timeout", error.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Deadline_MidStream_IsAnErrorEvent()
    {
        var events = (await Server.StreamAsync("""{"input":"go","temperature":0,"max_output_tokens":1800,"ignore_eos":true,"timeout":0.05,"stream":true}""", "/v1/responses"))
            .Select(e => JsonDocument.Parse(e).RootElement).ToList();
        var last = events[^1];
        Assert.Equal("error", last.GetProperty("type").GetString());
        Assert.Equal("timeout", last.GetProperty("code").GetString());
        Assert.Equal(events.Count - 1, last.GetProperty("sequence_number").GetInt32());
        await Eventually.TrueAsync(() => Server.Scheduler.ActiveRequests == 0, "the request left the engine");
    }

    [Fact]
    public async Task AutoTools_StreamedText_EqualsNonStreamed()
    {
        // tool_choice auto: text that may start a call is held back while streaming, then released as deltas.
        const string Body = """{"input":"def fibonacci(n):","tools":[{"type":"function","name":"ping","parameters":{"type":"object"}}],"temperature":0,"max_output_tokens":40""";
        var whole = await Server.CompleteAsync(Body + "}", "/v1/responses");
        var events = (await Server.StreamAsync(Body + ",\"stream\":true}", "/v1/responses")).Select(e => JsonDocument.Parse(e).RootElement).ToList();
        var message = Assert.Single(whole.GetProperty("output").EnumerateArray());
        Assert.Equal("message", message.GetProperty("type").GetString());
        var streamed = string.Concat(events.Where(e => e.GetProperty("type").GetString() == "response.output_text.delta").Select(e => e.GetProperty("delta").GetString()));
        Assert.Equal(message.GetProperty("content")[0].GetProperty("text").GetString(), streamed);
        Assert.Equal(whole.GetProperty("status").GetString(), events[^1].GetProperty("response").GetProperty("status").GetString());
    }

    [Fact]
    public async Task VllmExtensions_PassThrough()
    {
        var response = await Server.CompleteAsync("""{"input":"hi","temperature":1,"seed":7,"top_k":5,"min_tokens":4,"ignore_eos":true,"max_output_tokens":4}""", "/v1/responses");
        var again = await Server.CompleteAsync("""{"input":"hi","temperature":1,"seed":7,"top_k":5,"min_tokens":4,"ignore_eos":true,"max_output_tokens":4}""", "/v1/responses");
        Assert.Equal(4, response.GetProperty("usage").GetProperty("output_tokens").GetInt32());
        string Text(JsonElement r) => r.GetProperty("output")[0].GetProperty("content")[0].GetProperty("text").GetString()!;
        Assert.Equal(Text(response), Text(again));
    }
}

/// <summary><c>/v1/responses</c> behind <c>--api-key</c>: the key and the request id apply as on every <c>/v1</c> route.</summary>
public sealed class ResponsesApiKeyTests(ApiKeyServer fixture) : IClassFixture<ApiKeyServer>
{
    [Fact]
    public async Task MissingKey_Is401()
    {
        using var content = new StringContent("""{"input":"x","max_output_tokens":1}""", Encoding.UTF8, "application/json");
        using var response = await fixture.Server.Http.PostAsync("/v1/responses", content);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task WithKey_Answers_AndTheResponseIdCarriesTheRequestId()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/responses") { Content = new StringContent("""{"input":"x","max_output_tokens":2,"temperature":0}""", Encoding.UTF8, "application/json") };
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer sk-two");
        request.Headers.TryAddWithoutValidation("X-Request-Id", "my-request-7");
        using var response = await fixture.Server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("my-request-7", response.Headers.GetValues("X-Request-Id").Single());
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("resp_my-request-7", body.RootElement.GetProperty("id").GetString());
    }
}
