using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary>A copy of the default model whose <c>generation_config.json</c> sets sampling defaults.</summary>
public sealed class DefaultsModelServer : IAsyncLifetime
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "is-defaults-" + Guid.NewGuid().ToString("N"));
    private TestServer? _server;

    public TestServer Server => _server ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_folder);
        foreach (var file in Directory.GetFiles(RepositoryPaths.DefaultModel))
        {
            var target = Path.Combine(_folder, Path.GetFileName(file));
            if (Path.GetFileName(file) == "model.onnx")
            {
                File.CreateSymbolicLink(target, file);
            }
            else
            {
                File.Copy(file, target);
            }
        }

        File.WriteAllText(Path.Combine(_folder, "generation_config.json"), """{"eos_token_id": 0, "repetition_penalty": 1.5, "do_sample": true, "temperature": 0.0}""");
        _server = await TestServer.StartAsync(_folder);
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        Directory.Delete(_folder, recursive: true);
    }
}

/// <summary>Sampling defaults come from <c>generation_config.json</c> unless the request says otherwise.</summary>
public sealed class GenerationDefaultsTests(DefaultsModelServer defaults, DefaultModelServer plain) : IClassFixture<DefaultsModelServer>, IClassFixture<DefaultModelServer>
{
    private const string Prompt = "def fibonacci(n):";

    private static async Task<string> TextAsync(TestServer server, string extra)
        => (await server.CompleteAsync($$"""{"prompt":{{JsonSerializer.Serialize(Prompt)}},"max_tokens":40{{extra}}}""")).GetProperty("choices")[0].GetProperty("text").GetString()!;

    [Fact]
    public async Task ModelDefaults_ApplyWhenTheRequestIsSilent_AndTheRequestWins()
    {
        // The model's defaults: greedy (temperature 0) with repetition_penalty 1.5, the same as asking the plain model for them.
        var byDefault = await TextAsync(defaults.Server, "");
        Assert.Equal(await TextAsync(plain.Server, ",\"temperature\":0,\"repetition_penalty\":1.5"), byDefault);
        Assert.NotEqual(await TextAsync(plain.Server, ",\"temperature\":0"), byDefault);

        // A request that names the parameter overrides the model's default.
        Assert.Equal(await TextAsync(plain.Server, ",\"temperature\":0"), await TextAsync(defaults.Server, ",\"repetition_penalty\":1.0"));
    }
}
