using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Hosting;
using InferenceServer.Hosting.Hub;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// <c>--model &lt;org&gt;/&lt;name&gt;</c> against a hub on loopback (<see cref="FakeHub"/>): the download writes
/// huggingface_hub's cache layout, takes only the files the server needs, sends <c>HF_TOKEN</c>, resumes a cut
/// download with a Range request, and a later start finds the model in the cache without the network.
/// </summary>
public sealed class HubModelTests : IAsyncLifetime
{
    private const string Repository = "test-org/llama-gqa";
    private readonly string _work = Directory.CreateTempSubdirectory("hub-").FullName;
    private FakeHub _hub = null!;

    private static HubModelId Id => new("test-org", "llama-gqa");

    private string Cache => Path.Combine(_work, "hub");

    public async Task InitializeAsync() => _hub = await FakeHub.StartAsync(Repository, RepositoryPaths.Fixture("llama-gqa"));

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        Directory.Delete(_work, recursive: true);
    }

    private HubSettings Settings(string? token = null, Uri? endpoint = null)
        => new() { Endpoint = endpoint ?? _hub.Endpoint, Token = token, CacheDirectory = Cache };

    private static Task<string> ResolveAsync(HubSettings settings, List<string>? lines = null)
        => HubModelResolver.ResolveAsync(Id, "main", settings, line => lines?.Add(line), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

    [Fact]
    public async Task Download_WritesTheHubCacheLayout_WithOnlyTheFilesTheServerNeeds()
    {
        var lines = new List<string>();
        var snapshot = await ResolveAsync(Settings(), lines);

        var repository = Path.Combine(Cache, "models--test-org--llama-gqa");
        Assert.Equal(Path.Combine(repository, "snapshots", FakeHub.Commit), snapshot);
        Assert.Equal(FakeHub.Commit, File.ReadAllText(Path.Combine(repository, "refs", "main")));
        Assert.Equal(["config.json", "generation_config.json", "model.onnx"], Directory.GetFiles(snapshot).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        foreach (var file in Directory.GetFiles(snapshot))
        {
            var link = new FileInfo(file).LinkTarget;
            Assert.NotNull(link);
            Assert.StartsWith("../../blobs/", link, StringComparison.Ordinal);
            Assert.Equal(File.ReadAllBytes(Path.Combine(RepositoryPaths.Fixture("llama-gqa"), Path.GetFileName(file))), File.ReadAllBytes(file));
        }

        Assert.Equal(3, lines.Count(l => l.StartsWith("downloaded test-org/llama-gqa/", StringComparison.Ordinal)));
        Assert.DoesNotContain(_hub.Requests, r => r.Path.EndsWith("model.safetensors", StringComparison.Ordinal) || r.Path.EndsWith("reference.json", StringComparison.Ordinal));
    }

    [Fact]
    public async Task CachedModel_IsFound_WithoutTheNetwork()
    {
        var first = await ResolveAsync(Settings());
        var lines = new List<string>();
        var second = await ResolveAsync(Settings(endpoint: new Uri("http://127.0.0.1:9")), lines);
        Assert.Equal(first, second);
        Assert.Contains(lines, l => l.Contains("from the Hugging Face cache", StringComparison.Ordinal));
    }

    [Fact]
    public async Task GatedRepository_WithoutToken_SaysToSetHfToken_AndWithItDownloads()
    {
        _hub.Token = "hf_secret";
        var error = await Assert.ThrowsAsync<StartupException>(() => ResolveAsync(Settings()));
        Assert.Contains("401", error.Message, StringComparison.Ordinal);
        Assert.Contains("HF_TOKEN", error.Message, StringComparison.Ordinal);

        var snapshot = await ResolveAsync(Settings(token: "hf_secret"));
        Assert.True(File.Exists(Path.Combine(snapshot, "model.onnx")));
    }

    [Fact]
    public async Task CutDownload_IsResumedWithARangeRequest()
    {
        _hub.CutFile = "model.onnx";
        var error = await Assert.ThrowsAsync<StartupException>(() => ResolveAsync(Settings()));
        Assert.Contains("resume", error.Message, StringComparison.Ordinal);
        var incomplete = Assert.Single(Directory.GetFiles(Path.Combine(Cache, "models--test-org--llama-gqa", "blobs"), "*.incomplete"));
        var kept = new FileInfo(incomplete).Length;
        Assert.True(kept > 0);

        var lines = new List<string>();
        var snapshot = await ResolveAsync(Settings(), lines);
        Assert.Contains(_hub.Requests, r => r.Method == "GET" && r.Path.EndsWith("/model.onnx", StringComparison.Ordinal) && r.Range == $"bytes={kept}-");
        Assert.Contains(lines, l => l.Contains("model.onnx", StringComparison.Ordinal) && l.Contains("resumed", StringComparison.Ordinal));
        Assert.Equal(File.ReadAllBytes(Path.Combine(RepositoryPaths.Fixture("llama-gqa"), "model.onnx")), File.ReadAllBytes(Path.Combine(snapshot, "model.onnx")));
        Assert.Empty(Directory.GetFiles(Path.Combine(Cache, "models--test-org--llama-gqa", "blobs"), "*.incomplete"));
    }

    [Fact]
    public async Task UnknownRepository_IsOneLineSayingNotFound()
    {
        var error = await Assert.ThrowsAsync<StartupException>(() => HubModelResolver.ResolveAsync(new HubModelId("test-org", "missing"), "main", Settings(), _ => { }, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("not found", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Qwen/Qwen2.5-0.5B-Instruct", true)]
    [InlineData("models/tiny-pycoder", true)]
    [InlineData("/models/tiny", false)]
    [InlineData("./tiny", false)]
    [InlineData("a/b/c", false)]
    [InlineData("tiny", false)]
    public void HubIds_AreTwoParts(string text, bool isId)
        => Assert.Equal(isId, HubModelId.TryParse(text, out _));

    [Fact]
    public void FileSelection_TakesTheServedGraph_AndItsExternalData_OrElseTheCheckpoint()
    {
        Assert.Equal(
            ["tokenizer.json", "tokenizer_config.json", "onnx/model.onnx", "onnx/model.onnx_data", "config.json"],
            HubModelResolver.SelectFiles(["README.md", "config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx", "onnx/model.onnx_data", "onnx/model_q4.onnx", "model.safetensors"]));
        Assert.Equal(
            ["generation_config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "chat_template.jinja", "config.json"],
            HubModelResolver.SelectFiles(["config.json", "generation_config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "chat_template.jinja", "pytorch_model.bin"]));
    }

    [Fact]
    public async Task Server_ServesAHubId_DownloadedThroughHfEndpoint()
    {
        var environment = new Dictionary<string, string> { ["HF_ENDPOINT"] = _hub.Endpoint.ToString(), ["HF_HUB_CACHE"] = Cache };
        await using var server = await ServerProcess.StartAsync(environment, "--model", Repository);
        using var models = JsonDocument.Parse(await server.Http.GetStringAsync("/v1/models"));
        Assert.Equal(Repository, models.RootElement.GetProperty("data")[0].GetProperty("id").GetString());
        Assert.Contains(server.Events, e => e.GetProperty("@m").GetString()!.StartsWith("downloaded test-org/llama-gqa/model.onnx", StringComparison.Ordinal));
        Assert.True(File.Exists(Path.Combine(Cache, "models--test-org--llama-gqa", "refs", "main")));
    }
}
