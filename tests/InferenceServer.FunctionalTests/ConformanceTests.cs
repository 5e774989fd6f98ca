using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// Greedy decoding through the HTTP API returns exactly the tokens Hugging Face transformers generated
/// (<c>reference.json</c>), for each fixture architecture and the default model.
/// </summary>
public abstract class ConformanceTests<TServer>(TServer fixture) where TServer : ModelServerFixture
{
    protected TServer Fixture => fixture;

    public static IEnumerable<object[]> CaseIndices(string model) => Enumerable.Range(0, ReferenceCase.Load(model).Count).Select(i => new object[] { i });

    protected async Task AssertGreedyMatchesAsync(int caseIndex)
    {
        var reference = ReferenceCase.Load(fixture.Model)[caseIndex];
        var body = JsonSerializer.Serialize(new
        {
            model = Path.GetFileName(fixture.Model),
            prompt = reference.Prompt,
            max_tokens = reference.Greedy.Length,
            temperature = 0,
            ignore_eos = true,
            return_token_ids = true,
        });

        var response = await fixture.Server.CompleteAsync(body);
        var choice = response.GetProperty("choices")[0];
        var tokens = choice.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(reference.Greedy, tokens);
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(reference.Prompt, choice.GetProperty("prompt_token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        Assert.Equal(reference.Prompt.Length, response.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(reference.Greedy.Length, response.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }
}

public sealed class LlamaGqaConformanceTests(LlamaGqaServer fixture) : ConformanceTests<LlamaGqaServer>(fixture), IClassFixture<LlamaGqaServer>
{
    public static IEnumerable<object[]> Cases => CaseIndices(RepositoryPaths.Fixture("llama-gqa"));

    [Theory]
    [MemberData(nameof(Cases))]
    public Task Greedy_MatchesTransformers(int caseIndex) => AssertGreedyMatchesAsync(caseIndex);
}

public sealed class Qwen2ConformanceTests(Qwen2Server fixture) : ConformanceTests<Qwen2Server>(fixture), IClassFixture<Qwen2Server>
{
    public static IEnumerable<object[]> Cases => CaseIndices(RepositoryPaths.Fixture("qwen2"));

    [Theory]
    [MemberData(nameof(Cases))]
    public Task Greedy_MatchesTransformers(int caseIndex) => AssertGreedyMatchesAsync(caseIndex);
}

public sealed class DeepseekMlaConformanceTests(DeepseekMlaServer fixture) : ConformanceTests<DeepseekMlaServer>(fixture), IClassFixture<DeepseekMlaServer>
{
    public static IEnumerable<object[]> Cases => CaseIndices(RepositoryPaths.Fixture("deepseek-v3-mla"));

    [Theory]
    [MemberData(nameof(Cases))]
    public Task Greedy_MatchesTransformers(int caseIndex) => AssertGreedyMatchesAsync(caseIndex);
}

public sealed class DefaultModelConformanceTests(DefaultModelServer server) : ConformanceTests<DefaultModelServer>(server), IClassFixture<DefaultModelServer>
{
    public static IEnumerable<object[]> Cases => CaseIndices(RepositoryPaths.DefaultModel);

    [Theory]
    [MemberData(nameof(Cases))]
    public Task Greedy_MatchesTransformers(int caseIndex) => AssertGreedyMatchesAsync(caseIndex);

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task TextPrompt_CompletesToReferenceText(int caseIndex)
    {
        var reference = ReferenceCase.Load(Fixture.Model)[caseIndex];
        var body = JsonSerializer.Serialize(new
        {
            prompt = reference.PromptText,
            max_tokens = reference.Greedy.Length,
            temperature = 0,
            ignore_eos = true,
            return_token_ids = true,
        });

        var response = await Fixture.Server.CompleteAsync(body);
        var choice = response.GetProperty("choices")[0];
        Assert.Equal(reference.Prompt, choice.GetProperty("prompt_token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        Assert.Equal(reference.CompletionText, choice.GetProperty("text").GetString());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task StreamedText_EqualsNonStreamed(int caseIndex)
    {
        var reference = ReferenceCase.Load(Fixture.Model)[caseIndex];
        var body = JsonSerializer.Serialize(new
        {
            prompt = reference.PromptText,
            max_tokens = reference.Greedy.Length,
            temperature = 0,
            ignore_eos = true,
            stream = true,
        });

        var events = await Fixture.Server.StreamAsync(body);
        Assert.Equal("[DONE]", events[^1]);
        var text = string.Concat(events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal(reference.CompletionText, text);
    }
}
