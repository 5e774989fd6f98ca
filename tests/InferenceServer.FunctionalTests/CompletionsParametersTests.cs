using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary>The sampling, logprobs, echo and structured-output parameters of <c>/v1/completions</c> on the default model.</summary>
public sealed class CompletionsParametersTests(DefaultModelServer fixture) : IClassFixture<DefaultModelServer>
{
    private TestServer Server => fixture.Server;

    private const string Prompt = "def fibonacci(n):";

    private static int[] Ids(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt32()).ToArray();

    [Fact]
    public async Task Logprobs_HaveTheLegacyShape_AndGreedyPicksTheTopToken()
    {
        var response = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":6,"temperature":0,"logprobs":2}""");
        var choice = response.GetProperty("choices")[0];
        var logprobs = choice.GetProperty("logprobs");
        var tokens = logprobs.GetProperty("tokens").EnumerateArray().Select(e => e.GetString()!).ToArray();
        Assert.Equal(6, tokens.Length);
        Assert.Equal(choice.GetProperty("text").GetString(), string.Concat(tokens));
        var offsets = Ids(logprobs.GetProperty("text_offset"));
        Assert.Equal(0, offsets[0]);
        for (var i = 1; i < tokens.Length; i++)
        {
            Assert.Equal(offsets[i - 1] + tokens[i - 1].Length, offsets[i]);
        }

        for (var i = 0; i < tokens.Length; i++)
        {
            var chosen = logprobs.GetProperty("token_logprobs")[i].GetSingle();
            var top = logprobs.GetProperty("top_logprobs")[i].EnumerateObject().ToList();
            Assert.InRange(top.Count, 2, 3);
            Assert.True(chosen <= 0);
            Assert.Equal(top.Max(p => p.Value.GetSingle()), chosen, 5);
        }
    }

    [Fact]
    public async Task Echo_PrependsThePrompt_WithPromptLogprobsFirstNull()
    {
        var response = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":3,"temperature":0,"echo":true,"logprobs":1}""");
        var plain = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":3,"temperature":0}""");
        var choice = response.GetProperty("choices")[0];
        Assert.Equal(Prompt + plain.GetProperty("choices")[0].GetProperty("text").GetString(), choice.GetProperty("text").GetString());
        var promptTokens = response.GetProperty("usage").GetProperty("prompt_tokens").GetInt32();
        var logprobs = choice.GetProperty("logprobs");
        Assert.Equal(promptTokens + 3, logprobs.GetProperty("tokens").GetArrayLength());
        Assert.Equal(JsonValueKind.Null, logprobs.GetProperty("token_logprobs")[0].ValueKind);
        Assert.Equal(JsonValueKind.Null, logprobs.GetProperty("top_logprobs")[0].ValueKind);
        for (var i = 1; i < promptTokens + 3; i++)
        {
            Assert.True(logprobs.GetProperty("token_logprobs")[i].GetSingle() <= 0);
        }

        // Echo with no logprobs: the text only.
        var echoOnly = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":3,"temperature":0,"echo":true}""");
        Assert.Equal(choice.GetProperty("text").GetString(), echoOnly.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(JsonValueKind.Null, echoOnly.GetProperty("choices")[0].GetProperty("logprobs").ValueKind);
    }

    [Fact]
    public async Task StreamedLogprobs_MatchTheWholeResponse()
    {
        var body = $$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":5,"temperature":0,"logprobs":1,"stream":true}""";
        var events = await Server.StreamAsync(body);
        var streamed = events.Where(e => e != "[DONE]").Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0].GetProperty("logprobs"))
            .Where(l => l.ValueKind == JsonValueKind.Object).SelectMany(l => l.GetProperty("token_logprobs").EnumerateArray().Select(v => v.GetSingle())).ToArray();
        var whole = await Server.CompleteAsync(body.Replace("\"stream\":true", "\"stream\":false"));
        var expected = whole.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("token_logprobs").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.Equal(expected, streamed);
    }

    [Fact]
    public async Task LogitBias_ForcesOrForbidsTokens()
    {
        var forced = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":3,"temperature":0,"logit_bias":{"500":100},"return_token_ids":true}""");
        Assert.Equal([500, 500, 500], Ids(forced.GetProperty("choices")[0].GetProperty("token_ids")));

        // The greedy completion starts with token 268; forbidding it changes the first token.
        var forbidden = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":1,"temperature":0,"logit_bias":{"268":-100},"return_token_ids":true}""");
        Assert.NotEqual(268, Ids(forbidden.GetProperty("choices")[0].GetProperty("token_ids"))[0]);
    }

    [Fact]
    public async Task Penalties_ChangeRepetitiveGreedyOutput()
    {
        var plain = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":40,"temperature":0,"return_token_ids":true}""");
        var penalized = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":40,"temperature":0,"frequency_penalty":2,"presence_penalty":2,"return_token_ids":true}""");
        var a = Ids(plain.GetProperty("choices")[0].GetProperty("token_ids"));
        var b = Ids(penalized.GetProperty("choices")[0].GetProperty("token_ids"));
        Assert.NotEqual(a, b);

        // Strong penalties make the output repeat itself less.
        Assert.True(b.Distinct().Count() >= a.Distinct().Count());
    }

    [Fact]
    public async Task JsonObject_ConstrainsCompletionsToo()
    {
        var response = await Server.CompleteAsync("""{"prompt":"config = ","max_tokens":60,"temperature":0,"response_format":{"type":"json_schema","json_schema":{"name":"c","schema":{"type":"object","properties":{"debug":{"type":"boolean"},"level":{"enum":[1,2,3]}},"required":["debug","level"]}}}}""");
        var choice = response.GetProperty("choices")[0];
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        using var document = JsonDocument.Parse(choice.GetProperty("text").GetString()!);
        Assert.Contains(document.RootElement.GetProperty("level").GetInt32(), new[] { 1, 2, 3 });
    }

    [Fact]
    public async Task MinTokensAndIgnoreEos_AreHonoured()
    {
        var response = await Server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":30,"min_tokens":30,"temperature":0,"ignore_eos":true}""");
        Assert.Equal(30, response.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }
}
