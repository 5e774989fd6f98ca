using System.Text.Json.Nodes;
using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// onnxruntime-genai model folders (ADR 0006): a folder the real executable builds with <c>build --graph genai</c>
/// (GroupQueryAttention, seqlens_k from the mask, <c>genai_config.json</c>), served by the real host on loopback with
/// concurrent requests in one continuous batch, returns the reference's greedy tokens, with or without this server's
/// own section in <c>genai_config.json</c> (what the GenAI builder writes has none).
/// </summary>
public sealed class GenAiFolderServingTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("genai-serving-").FullName;

    public void Dispose() => Directory.Delete(_work, recursive: true);

    [Theory]
    [InlineData("llama-gqa", false)]
    [InlineData("qwen2", true)]
    public async Task GenAiFolder_ServedAsItIs_GivesTheReferenceGreedyTokensUnderConcurrency(string fixture, bool withoutServerSection)
    {
        var folder = Path.Combine(_work, fixture);
        var (code, _, stderr) = await ExternalTools.RunAsync(
            "dotnet", AppContext.BaseDirectory, TimeSpan.FromSeconds(120),
            [Path.Combine(AppContext.BaseDirectory, "InferenceServer.dll"), "build", "--checkpoint", RepositoryPaths.Fixture(fixture), "--out", folder, "--graph", "genai"]);
        Assert.True(code == 0, stderr);
        if (withoutServerSection)
        {
            var path = Path.Combine(folder, "genai_config.json");
            var config = JsonNode.Parse(await File.ReadAllTextAsync(path))!.AsObject();
            Assert.True(config.Remove("inference_server"));
            await File.WriteAllTextAsync(path, config.ToJsonString());
        }

        await using var server = await TestServer.StartAsync(folder);
        var references = ReferenceCase.Load(RepositoryPaths.Fixture(fixture)).ToList();

        // All at once: prompts of different lengths prefill beside each other's decodes.
        var responses = await Task.WhenAll(references.Select(reference => server.CompleteAsync(
            $$"""{"model":"{{fixture}}","prompt":[{{string.Join(",", reference.Prompt)}}],"max_tokens":{{reference.Greedy.Length}},"temperature":0,"ignore_eos":true,"return_token_ids":true}""")));
        for (var i = 0; i < references.Count; i++)
        {
            Assert.Equal(references[i].Greedy, responses[i].GetProperty("choices")[0].GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()));
        }
    }

    [Fact]
    public async Task CheckpointServedWithDTypeInt4_IsBuiltAsMatMulNBitsAndAnswers()
    {
        var checkpoint = Path.Combine(_work, "llama-gqa");
        Directory.CreateDirectory(checkpoint);
        foreach (var name in (string[])["config.json", "generation_config.json", "model.safetensors"])
        {
            File.Copy(Path.Combine(RepositoryPaths.Fixture("llama-gqa"), name), Path.Combine(checkpoint, name));
        }

        var cache = Path.Combine(_work, "cache");
        await using var server = await TestServer.StartAsync(checkpoint, "--build-cache", cache, "--dtype", "int4", "--device", "cpu");
        var reference = ReferenceCase.Load(RepositoryPaths.Fixture("llama-gqa"))[0];
        var response = await server.CompleteAsync(
            $$"""{"model":"llama-gqa","prompt":[{{string.Join(",", reference.Prompt)}}],"max_tokens":8,"temperature":0,"ignore_eos":true,"return_token_ids":true}""");
        Assert.Equal(8, response.GetProperty("choices")[0].GetProperty("token_ids").GetArrayLength());

        var built = Assert.Single(Directory.GetDirectories(cache));
        var config = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(built, "genai_config.json")))!;
        Assert.Equal("int4", (string?)config["inference_server"]!["dtype"]);
    }
}
