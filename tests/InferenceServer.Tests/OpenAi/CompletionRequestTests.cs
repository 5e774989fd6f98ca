using System.Text.Json;
using InferenceServer.Engine;
using InferenceServer.OpenAi;

namespace InferenceServer.Tests.OpenAi;

public sealed class CompletionRequestTests : IClassFixture<CompletionRequestTests.ModelFixture>
{
    private readonly ServedModel _model;

    public CompletionRequestTests(ModelFixture fixture) => _model = fixture.Model;

    public sealed class ModelFixture : IDisposable
    {
        public ServedModel Model { get; } = ServedModel.Load(Path.Combine(Root(), "models", "tiny-pycoder"));

        public void Dispose() => Model.Dispose();

        private static string Root()
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            {
                if (File.Exists(Path.Combine(d.FullName, "InferenceServer.sln")))
                {
                    return d.FullName;
                }
            }

            throw new InvalidOperationException();
        }
    }

    private CompletionRequest Parse(string json) => CompletionRequest.Parse(JsonDocument.Parse(json).RootElement, _model);

    [Fact]
    public void Defaults_FollowOpenAi()
    {
        var request = Parse("""{"prompt":"x = 1"}""");
        Assert.Equal(CompletionRequest.DefaultMaxTokens, request.Stop.MaxTokens);
        Assert.Equal(1.0, request.Sampling.Temperature);
        Assert.Equal(1, request.N);
        Assert.False(request.Stream);
        Assert.False(request.Stop.IgnoreEos);
    }

    [Fact]
    public void TextPrompt_IsTokenizedWithTheModelTokenizer()
    {
        var request = Parse("""{"prompt":"def fibonacci(n):"}""");
        Assert.Equal([325, 285, 600, 264, 1437, 1245, 9, 79, 322], request.Prompts[0]);
    }

    [Fact]
    public void EveryParameter_IsRead()
    {
        var request = Parse("""{"model":"tiny-pycoder","prompt":[[1,2],[3]],"max_tokens":7,"min_tokens":2,"temperature":0.5,"top_p":0.9,"top_k":40,"seed":-5,"stop":"\n\n","stop_token_ids":[5],"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true},"return_token_ids":true,"n":2,"user":"u","priority":-1,"logprobs":null,"echo":false}""");
        Assert.Equal(2, request.Prompts.Count);
        Assert.Equal(7, request.Stop.MaxTokens);
        Assert.Equal(2, request.Stop.MinTokens);
        Assert.Equal(0.5, request.Sampling.Temperature);
        Assert.Equal(0.9, request.Sampling.TopP);
        Assert.Equal(40, request.Sampling.TopK);
        Assert.Equal(-5, request.Sampling.Seed);
        Assert.Equal(["\n\n"], request.Stop.StopStrings);
        Assert.Equal([5], request.Stop.StopTokenIds);
        Assert.True(request.Stop.IgnoreEos);
        Assert.True(request.Stream);
        Assert.True(request.IncludeUsage);
        Assert.True(request.ReturnTokenIds);
        Assert.Equal(2, request.N);
        Assert.Equal(-1, request.Priority);
    }

    [Fact]
    public void DefaultMaxTokens_ShrinksToFitTheContext()
    {
        var prompt = string.Join(",", Enumerable.Repeat("5", 2040));
        var request = Parse($$"""{"prompt":[{{prompt}}]}""");
        Assert.Equal(8, request.Stop.MaxTokens);
    }

    [Theory]
    [InlineData("""{"prompt":"x","max_tokens":0}""", "max_tokens")]
    [InlineData("""{"prompt":"x","max_tokens":1e400}""", "max_tokens")]
    [InlineData("""{"prompt":"x","max_tokens":99999999999999999999}""", "max_tokens")]
    [InlineData("""{"prompt":"x","top_k":null,"top_p":1.5}""", "top_p")]
    [InlineData("""{"prompt":"x","stop":["a",""]}""", "stop")]
    [InlineData("""{"prompt":"x","stop":{"a":1}}""", "stop")]
    [InlineData("""{"prompt":"x","echo":true}""", "echo")]
    [InlineData("""{"prompt":"x","logprobs":2}""", "logprobs")]
    [InlineData("""{"prompt":"x","ignore_eos":"true"}""", "ignore_eos")]
    [InlineData("""{"prompt":"x","model":5}""", "model")]
    [InlineData("""{"prompt":[1.5]}""", "prompt")]
    [InlineData("""{"prompt":[[]]}""", "prompt")]
    [InlineData("""{"prompt":"x","n":17}""", "n")]
    public void Invalid_NamesTheParameter(string json, string param)
    {
        var ex = Assert.Throws<RequestValidationException>(() => Parse(json));
        Assert.Equal(param, ex.Param);
        Assert.Equal(400, ex.StatusCode);
    }

    [Fact]
    public void PromptTooLong_GivesBothNumbers()
    {
        var prompt = string.Join(",", Enumerable.Repeat("5", 2000));
        var ex = Assert.Throws<RequestValidationException>(() => Parse($$"""{"prompt":[{{prompt}}],"max_tokens":100}"""));
        Assert.Contains("2048", ex.Message);
        Assert.Contains("2000", ex.Message);
        Assert.Contains("100", ex.Message);
    }
}
