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
        Assert.Equal(CompletionRequest.DefaultMaxTokens, request.Settings.Stop.MaxTokens);
        Assert.Equal(1.0, request.Settings.Sampling.Temperature);
        Assert.Equal(1, request.N);
        Assert.False(request.Stream);
        Assert.False(request.Settings.Stop.IgnoreEos);
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
        Assert.Equal(7, request.Settings.Stop.MaxTokens);
        Assert.Equal(2, request.Settings.Stop.MinTokens);
        Assert.Equal(0.5, request.Settings.Sampling.Temperature);
        Assert.Equal(0.9, request.Settings.Sampling.TopP);
        Assert.Equal(40, request.Settings.Sampling.TopK);
        Assert.Equal(-5, request.Settings.Sampling.Seed);
        Assert.Equal(["\n\n"], request.Settings.Stop.StopStrings);
        Assert.Equal([5], request.Settings.Stop.StopTokenIds);
        Assert.True(request.Settings.Stop.IgnoreEos);
        Assert.True(request.Stream);
        Assert.True(request.IncludeUsage);
        Assert.True(request.ReturnTokenIds);
        Assert.Equal(2, request.N);
        Assert.Equal(-1, request.Settings.Priority);
    }

    [Fact]
    public void SamplingExtensions_AreRead()
    {
        var request = Parse("""{"prompt":"x","min_p":0.1,"presence_penalty":0.5,"frequency_penalty":-0.5,"repetition_penalty":1.2,"logit_bias":{"5":-100,"7":2.5},"logprobs":3,"echo":true}""");
        var sampling = request.Settings.Sampling;
        Assert.Equal(0.1, sampling.MinP);
        Assert.Equal(0.5, sampling.PresencePenalty);
        Assert.Equal(-0.5, sampling.FrequencyPenalty);
        Assert.Equal(1.2, sampling.RepetitionPenalty);
        Assert.Equal(-100f, sampling.LogitBias![5]);
        Assert.Equal(2.5f, sampling.LogitBias[7]);
        Assert.Equal(3, sampling.Logprobs);
        Assert.Equal(3, sampling.PromptLogprobs);
        Assert.True(request.Echo);
        Assert.Null(Parse("""{"prompt":"x","logprobs":3}""").Settings.Sampling.PromptLogprobs);
        Assert.Null(Parse("""{"prompt":"x","logprobs":false}""").Settings.Sampling.Logprobs);
    }

    [Fact]
    public void ResponseFormat_IsRead()
    {
        Assert.False(Parse("""{"prompt":"x","response_format":{"type":"text"}}""").Settings.Format.IsJson);
        var json = Parse("""{"prompt":"x","response_format":{"type":"json_object"}}""").Settings.Format;
        Assert.True(json.IsJson);
        Assert.Null(json.Schema);
        var schema = Parse("""{"prompt":"x","response_format":{"type":"json_schema","json_schema":{"name":"p","strict":true,"schema":{"type":"object"}}}}""").Settings.Format;
        Assert.True(schema.Strict);
        Assert.Equal("object", schema.Schema!.Value.GetProperty("type").GetString());
    }

    [Fact]
    public void DefaultMaxTokens_ShrinksToFitTheContext()
    {
        var prompt = string.Join(",", Enumerable.Repeat("5", 2040));
        var request = Parse($$"""{"prompt":[{{prompt}}]}""");
        Assert.Equal(8, request.Settings.Stop.MaxTokens);
    }

    [Theory]
    [InlineData("""{"prompt":"x","max_tokens":0}""", "max_tokens")]
    [InlineData("""{"prompt":"x","max_tokens":1e400}""", "max_tokens")]
    [InlineData("""{"prompt":"x","max_tokens":99999999999999999999}""", "max_tokens")]
    [InlineData("""{"prompt":"x","top_k":null,"top_p":1.5}""", "top_p")]
    [InlineData("""{"prompt":"x","stop":["a",""]}""", "stop")]
    [InlineData("""{"prompt":"x","stop":{"a":1}}""", "stop")]
    [InlineData("""{"prompt":"x","echo":1}""", "echo")]
    [InlineData("""{"prompt":"x","logprobs":21}""", "logprobs")]
    [InlineData("""{"prompt":"x","logprobs":-1}""", "logprobs")]
    [InlineData("""{"prompt":"x","logprobs":"2"}""", "logprobs")]
    [InlineData("""{"prompt":"x","min_p":1.5}""", "min_p")]
    [InlineData("""{"prompt":"x","presence_penalty":2.5}""", "presence_penalty")]
    [InlineData("""{"prompt":"x","frequency_penalty":-3}""", "frequency_penalty")]
    [InlineData("""{"prompt":"x","repetition_penalty":0}""", "repetition_penalty")]
    [InlineData("""{"prompt":"x","logit_bias":{"abc":1}}""", "logit_bias")]
    [InlineData("""{"prompt":"x","logit_bias":{"4096":1}}""", "logit_bias")]
    [InlineData("""{"prompt":"x","logit_bias":{"5":101}}""", "logit_bias")]
    [InlineData("""{"prompt":"x","logit_bias":[1]}""", "logit_bias")]
    [InlineData("""{"prompt":"x","seed":"1"}""", "seed")]
    [InlineData("""{"prompt":"x","response_format":{"type":"xml"}}""", "response_format.type")]
    [InlineData("""{"prompt":"x","response_format":{"type":"json_schema"}}""", "response_format.json_schema")]
    [InlineData("""{"prompt":"x","response_format":{"type":"json_schema","json_schema":{"name":"a","schema":[1]}}}""", "response_format.json_schema.schema")]
    [InlineData("""{"prompt":"x","response_format":"json"}""", "response_format")]
    [InlineData("""{"prompt":"x","stream_options":{"include_usage":1},"stream":true}""", "stream_options.include_usage")]
    [InlineData("""{"prompt":"x","max_tokens":4,"min_tokens":5}""", "min_tokens")]
    [InlineData("""{"prompt":"x","best_of":2}""", "best_of")]
    [InlineData("""{"prompt":"x","suffix":"y"}""", "suffix")]
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
