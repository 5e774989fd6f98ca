using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// <c>--model &lt;checkpoint&gt;</c> (config.json + model.safetensors, no graph) builds on first start into the build cache
/// and serves Hugging Face's greedy tokens; the real executable's <c>build</c> and <c>inspect</c> commands.
/// </summary>
public sealed class CheckpointServingTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("checkpoint-serving-").FullName;

    public void Dispose() => Directory.Delete(_work, recursive: true);

    private string CheckpointOnly(string fixture) => RepositoryPaths.CheckpointCopy(fixture, _work);

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("llama-pruned")]
    [InlineData("llama-moh")]
    [InlineData("qwen3-moe")]
    public async Task CheckpointFolder_IsBuiltOnFirstStart_AndServesTheReferenceTokens(string fixture)
    {
        var checkpoint = CheckpointOnly(fixture);
        var cache = Path.Combine(_work, "cache");
        await using (var server = await TestServer.StartAsync(checkpoint, "--build-cache", cache))
        {
            foreach (var reference in ReferenceCase.Load(RepositoryPaths.Fixture(fixture)))
            {
                var response = await server.CompleteAsync($$"""{"model":"{{fixture}}","prompt":[{{string.Join(",", reference.Prompt)}}],"max_tokens":{{reference.Greedy.Length}},"temperature":0,"ignore_eos":true,"return_token_ids":true}""");
                Assert.Equal(reference.Greedy, response.GetProperty("choices")[0].GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()));
            }
        }

        // The build is cached: one folder, with the graph; the checkpoint folder itself is left as it was.
        var built = Assert.Single(Directory.GetDirectories(cache));
        Assert.True(File.Exists(Path.Combine(built, "model.onnx")));
        Assert.False(File.Exists(Path.Combine(checkpoint, "model.onnx")));
        var stamp = File.GetLastWriteTimeUtc(Path.Combine(built, "model.onnx"));
        await using (var again = await TestServer.StartAsync(checkpoint, "--build-cache", cache))
        {
            var models = await again.Http.GetStringAsync("/v1/models");
            Assert.Contains($"\"id\":\"{fixture}\"", models);
        }

        Assert.Equal(stamp, File.GetLastWriteTimeUtc(Path.Combine(built, "model.onnx")));
    }

    [Fact]
    public async Task BuildAndInspectCommands_OfTheRealExecutable()
    {
        var checkpoint = CheckpointOnly("qwen2");
        var output = Path.Combine(_work, "qwen2-onnx");
        var (code, stdout, stderr) = await RunAsync("build", "--checkpoint", checkpoint, "--out", output);
        Assert.True(code == 0, stderr);
        Assert.True(File.Exists(Path.Combine(output, "model.onnx")));
        Assert.True(File.Exists(Path.Combine(output, "model.onnx.data")));

        (code, stdout, stderr) = await RunAsync("inspect", output);
        Assert.True(code == 0, stderr);
        Assert.Contains("Attention", stdout);

        (code, _, stderr) = await RunAsync("build", "--checkpoint", Path.Combine(_work, "missing"), "--out", output);
        Assert.NotEqual(0, code);
        Assert.Contains("missing", stderr);
    }

    private static Task<(int Code, string Stdout, string Stderr)> RunAsync(params string[] args)
        => ExternalTools.RunAsync("dotnet", AppContext.BaseDirectory, TimeSpan.FromSeconds(120), [Path.Combine(AppContext.BaseDirectory, "InferenceServer.dll"), .. args]);
}
