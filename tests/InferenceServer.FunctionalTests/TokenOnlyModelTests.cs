using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary>A model folder without a tokenizer serves token-id prompts and refuses text with a 400 that says why.</summary>
public sealed class TokenOnlyModelTests(LlamaGqaServer fixture) : IClassFixture<LlamaGqaServer>
{
    [Fact]
    public async Task TextPrompt_Gets400NamingTheMissingTokenizer()
    {
        var (status, error) = await fixture.Server.PostRawAsync("/v1/completions", """{"prompt":"hello"}""");
        Assert.Equal(400, status);
        Assert.Equal("prompt", error.GetProperty("error").GetProperty("param").GetString());
        Assert.Contains("tokenizer", error.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task TokenPrompt_Works_WithEmptyText()
    {
        var response = await fixture.Server.CompleteAsync("""{"prompt":[1, 2, 3],"max_tokens":4,"ignore_eos":true,"return_token_ids":true}""");
        var choice = response.GetProperty("choices")[0];
        Assert.Equal(4, choice.GetProperty("token_ids").GetArrayLength());
        Assert.Equal("", choice.GetProperty("text").GetString());
    }
}
