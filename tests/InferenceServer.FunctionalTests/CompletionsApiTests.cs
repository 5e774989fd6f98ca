using System.ClientModel;
using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary><c>/v1/completions</c> on the default model through the official OpenAI client: features and bad input.</summary>
public sealed class CompletionsApiTests(DefaultModelServer fixture) : IClassFixture<DefaultModelServer>
{
    private TestServer Server => fixture.Server;

    private const string Prompt = "def fibonacci(n):";

    [Fact]
    public async Task Completion_HasOpenAiShapeAndUsage()
    {
        var response = await Server.CompleteAsync("""{"model":"tiny-pycoder","prompt":"import os\n","max_tokens":5,"temperature":0}""");
        Assert.StartsWith("cmpl-", response.GetProperty("id").GetString());
        Assert.Equal("text_completion", response.GetProperty("object").GetString());
        Assert.Equal("tiny-pycoder", response.GetProperty("model").GetString());
        var choice = response.GetProperty("choices")[0];
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        var usage = response.GetProperty("usage");
        Assert.Equal(5, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + 5, usage.GetProperty("total_tokens").GetInt32());
        Assert.False(choice.TryGetProperty("token_ids", out _));
    }

    [Fact]
    public async Task PromptArray_GivesOneChoicePerPrompt()
    {
        var response = await Server.CompleteAsync("""{"prompt":["import numpy as np\n", [325, 285, 600]],"max_tokens":3,"temperature":0,"return_token_ids":true}""");
        var choices = response.GetProperty("choices");
        Assert.Equal(2, choices.GetArrayLength());
        Assert.Equal([325, 285, 600], choices[1].GetProperty("prompt_token_ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(6, response.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task StopString_EndsAndIsNotEmitted()
    {
        // The greedy completion of the prompt is "\n    \"\"\"\n    Compute the fibonacci function...".
        var response = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":48,"temperature":0,"stop":["fibonacci function"]}""");
        var choice = response.GetProperty("choices")[0];
        Assert.Equal("\n    \"\"\"\n    Compute the ", choice.GetProperty("text").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task StopTokenId_EndsWithStop()
    {
        // The greedy completion starts with tokens 268 ("\n   ") and 432; stopping on 432 keeps only the first's text.
        var response = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":10,"temperature":0,"stop_token_ids":[432],"return_token_ids":true}""");
        var choice = response.GetProperty("choices")[0];
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Equal([268, 432], choice.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal("\n   ", choice.GetProperty("text").GetString());
    }

    [Fact]
    public async Task MinTokens_HoldsOffStopTokens()
    {
        var response = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":6,"temperature":0,"stop_token_ids":[432],"min_tokens":4,"return_token_ids":true}""");
        var ids = response.GetProperty("choices")[0].GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.True(ids.Length >= 4);
        Assert.DoesNotContain(432, ids.Take(4));
    }

    [Fact]
    public async Task NGreedy_GivesNIdenticalChoices()
    {
        var response = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":10,"temperature":0,"n":3,"ignore_eos":true}""");
        var choices = response.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2], choices.Select(c => c.GetProperty("index").GetInt32()));
        Assert.All(choices, c => Assert.Equal("\n    \"\"\"\n    Compute the fibonac", c.GetProperty("text").GetString()));
        Assert.Equal(30, response.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(9, response.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task Seed_ReproducesSampledOutput()
    {
        const string body = """{"prompt":"class Parser:\n","max_tokens":24,"temperature":1.0,"top_p":0.95,"top_k":50,"seed":1234,"return_token_ids":true}""";
        var first = await Server.CompleteAsync(body);
        var second = await Server.CompleteAsync(body);
        var other = await Server.CompleteAsync(body.Replace("1234", "99"));
        static string Ids(JsonElement r) => r.GetProperty("choices")[0].GetProperty("token_ids").GetRawText();
        Assert.Equal(Ids(first), Ids(second));
        Assert.NotEqual(Ids(first), Ids(other));
    }

    [Fact]
    public async Task Stream_IncludeUsage_EndsWithUsageThenDone()
    {
        var events = await Server.StreamAsync("""{"prompt":"import sys\n","max_tokens":6,"temperature":0,"stream":true,"stream_options":{"include_usage":true},"ignore_eos":true}""");
        Assert.Equal("[DONE]", events[^1]);
        var usageChunk = JsonDocument.Parse(events[^2]).RootElement;
        Assert.Equal(0, usageChunk.GetProperty("choices").GetArrayLength());
        Assert.Equal(6, usageChunk.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var last = JsonDocument.Parse(events[^3]).RootElement.GetProperty("choices")[0];
        Assert.Equal("length", last.GetProperty("finish_reason").GetString());
        foreach (var chunk in events.SkipLast(2))
        {
            Assert.Equal(JsonValueKind.Null, JsonDocument.Parse(chunk).RootElement.GetProperty("usage").ValueKind);
        }
    }

    [Fact]
    public async Task Stream_ReturnTokenIds_CarriesEveryToken()
    {
        var events = await Server.StreamAsync("""{"prompt":[325, 285, 600, 264, 1437, 1245, 9, 79, 322],"max_tokens":8,"temperature":0,"stream":true,"return_token_ids":true}""");
        var chunks = events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0]).ToList();
        var ids = chunks.SelectMany(c => c.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32())).ToArray();
        Assert.Equal([268, 432, 268, 2402, 914, 309, 285, 600], ids);
        Assert.True(chunks[0].TryGetProperty("prompt_token_ids", out _));
        Assert.False(chunks[1].TryGetProperty("prompt_token_ids", out _));
    }

    [Theory]
    [InlineData("{not json", null)]
    [InlineData("[1,2,3]", null)]
    [InlineData("""{"prompt":"x","max_tokens":-1}""", "max_tokens")]
    [InlineData("""{"prompt":"x","max_tokens":"ten"}""", "max_tokens")]
    [InlineData("""{"prompt":"x","max_tokens":1.5}""", "max_tokens")]
    [InlineData("""{"prompt":42}""", "prompt")]
    [InlineData("""{"prompt":[]}""", "prompt")]
    [InlineData("""{"prompt":""}""", "prompt")]
    [InlineData("""{"prompt":[1, 4096]}""", "prompt")]
    [InlineData("""{"prompt":[1, -3]}""", "prompt")]
    [InlineData("""{"prompt":[[1, 2], {"a":1}]}""", "prompt")]
    [InlineData("""{"max_tokens":3}""", "prompt")]
    [InlineData("""{"prompt":"x","temperature":-0.5}""", "temperature")]
    [InlineData("""{"prompt":"x","temperature":"hot"}""", "temperature")]
    [InlineData("""{"prompt":"x","top_p":0}""", "top_p")]
    [InlineData("""{"prompt":"x","top_k":-2}""", "top_k")]
    [InlineData("""{"prompt":"x","stream":"yes"}""", "stream")]
    [InlineData("""{"prompt":"x","stop":[1]}""", "stop")]
    [InlineData("""{"prompt":"x","stop_token_ids":[99999]}""", "stop_token_ids")]
    [InlineData("""{"prompt":"x","min_tokens":5,"max_tokens":2}""", "min_tokens")]
    [InlineData("""{"prompt":"x","seed":"abc"}""", "seed")]
    [InlineData("""{"prompt":"x","n":0}""", "n")]
    [InlineData("""{"prompt":"x","max_tokens":5000}""", "max_tokens")]
    [InlineData("""{"prompt":"x","stream_options":{"include_usage":true}}""", "stream_options")]
    public async Task InvalidRequest_Gets400InOpenAiEnvelope_AndServerKeepsServing(string body, string? param)
    {
        var (status, error) = await Server.PostRawAsync("/v1/completions", body);
        Assert.Equal(400, status);
        var envelope = error.GetProperty("error");
        Assert.Equal("invalid_request_error", envelope.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(envelope.GetProperty("message").GetString()));
        Assert.True(envelope.TryGetProperty("code", out _));
        if (param is null)
        {
            Assert.Equal(JsonValueKind.Null, envelope.GetProperty("param").ValueKind);
        }
        else
        {
            Assert.Equal(param, envelope.GetProperty("param").GetString());
        }

        var ok = await Server.CompleteAsync("""{"prompt":[325, 285],"max_tokens":2,"temperature":0}""");
        Assert.Equal(2, ok.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(0, Server.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task UnknownModel_Gets404()
    {
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => Server.CompleteAsync("""{"model":"gpt-4","prompt":"x"}"""));
        Assert.Equal(404, ex.Status);
        var (status, error) = await Server.PostRawAsync("/v1/completions", """{"model":"gpt-4","prompt":"x"}""");
        Assert.Equal(404, status);
        Assert.Equal("model_not_found", error.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Models_ListsTheServedModel()
    {
        var models = await Server.OpenAI.GetOpenAIModelClient().GetModelsAsync();
        var model = Assert.Single(models.Value);
        Assert.Equal("tiny-pycoder", model.Id);
        var one = await Server.OpenAI.GetOpenAIModelClient().GetModelAsync("tiny-pycoder");
        Assert.Equal("tiny-pycoder", one.Value.Id);
    }

    [Fact]
    public async Task HealthProbes_AreUp()
    {
        Assert.Equal("live", await Server.Http.GetStringAsync("/health/live"));
        Assert.Equal("ready", await Server.Http.GetStringAsync("/health/ready"));
    }

    [Fact]
    public async Task ClientDisconnect_FreesBlocks()
    {
        using var cts = new CancellationTokenSource();
        using var content = new StringContent("""{"prompt":"def main():\n","max_tokens":2000,"ignore_eos":true,"stream":true}""", System.Text.Encoding.UTF8, "application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = content };
        using var response = await Server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        using (var stream = await response.Content.ReadAsStreamAsync(cts.Token))
        {
            var buffer = new byte[256];
            _ = await stream.ReadAsync(buffer, cts.Token);

            // The first event can reach the client before the engine publishes the step's block count at the step's end.
            await Eventually.TrueAsync(() => Server.Scheduler.UsedBlocks > 0, "blocks in use while streaming");
        }

        response.Dispose();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((Server.Scheduler.UsedBlocks > 0 || Server.Scheduler.ActiveRequests > 0) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.Equal(0, Server.Scheduler.UsedBlocks);
        Assert.Equal(0, Server.Scheduler.ActiveRequests);
    }
}
