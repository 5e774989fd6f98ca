namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>Starts one server per test class for the model folder it names, and stops it after the class.</summary>
public abstract class ModelServerFixture : IAsyncLifetime
{
    private TestServer? _server;

    protected ModelServerFixture(string model, params string[] extraArgs)
    {
        Model = model;
        ExtraArgs = extraArgs;
    }

    public string Model { get; }

    public string[] ExtraArgs { get; }

    public TestServer Server => _server ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(Model, ExtraArgs);

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

public sealed class DefaultModelServer() : ModelServerFixture(RepositoryPaths.DefaultModel);

public sealed class LlamaGqaServer() : ModelServerFixture(RepositoryPaths.Fixture("llama-gqa"));

public sealed class Qwen2Server() : ModelServerFixture(RepositoryPaths.Fixture("qwen2"));

public sealed class DeepseekMlaServer() : ModelServerFixture(RepositoryPaths.Fixture("deepseek-v3-mla"));

/// <summary>The default model with a ChatML chat template (Qwen 2.5's, which renders tools) added by <c>--chat-template</c>.</summary>
public sealed class ChatModelServer() : ModelServerFixture(RepositoryPaths.DefaultModel, "--chat-template", RepositoryPaths.ChatTemplate("qwen2.5-instruct"));
/// <summary>The default model with a one-request queue, to reach RESOURCE_EXHAUSTED.</summary>
public sealed class OneSlotQueueServer() : ModelServerFixture(RepositoryPaths.DefaultModel, "--max-queued-requests", "1", "--max-num-seqs", "1");
