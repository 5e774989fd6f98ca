using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary>A folder that is not a model stops the real executable at start with one line naming the file, and exit code 2.</summary>
public sealed class StartupTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("not-a-model-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task MissingConfig_ExitsWith2_NamingConfigJson()
    {
        var (code, stderr) = await RunServerAsync("--model", _folder);
        Assert.Equal(2, code);
        Assert.Contains("config.json", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    [Fact]
    public async Task UnreadableConfig_ExitsWith2()
    {
        File.WriteAllText(Path.Combine(_folder, "config.json"), "{ this is not json");
        var (code, stderr) = await RunServerAsync("--model", _folder);
        Assert.Equal(2, code);
        Assert.Contains("config.json", stderr);
        Assert.Contains("not valid JSON", stderr);
    }

    [Fact]
    public async Task MissingGraph_ExitsWith2_NamingModelOnnx()
    {
        File.Copy(Path.Combine(RepositoryPaths.Fixture("llama-gqa"), "config.json"), Path.Combine(_folder, "config.json"));
        var (code, stderr) = await RunServerAsync("--model", _folder);
        Assert.Equal(2, code);
        Assert.Contains("model.onnx", stderr);
    }

    [Fact]
    public async Task GraphWithoutKvInputs_ExitsWith2()
    {
        File.Copy(Path.Combine(RepositoryPaths.Fixture("llama-gqa"), "config.json"), Path.Combine(_folder, "config.json"));
        File.WriteAllBytes(Path.Combine(_folder, "model.onnx"), [1, 2, 3, 4]);
        var (code, stderr) = await RunServerAsync("--model", _folder);
        Assert.Equal(2, code);
        Assert.Contains("model.onnx", stderr);
    }

    [Fact]
    public async Task BadOption_ExitsWith2()
    {
        var (code, stderr) = await RunServerAsync("--model", RepositoryPaths.Fixture("llama-gqa"), "--max-num-seqs", "zero");
        Assert.Equal(2, code);
        Assert.Contains("--max-num-seqs", stderr);
    }

    [Fact]
    public async Task BadDevice_ExitsWith2_NamingTheOption()
    {
        var (code, stderr) = await RunServerAsync("--model", RepositoryPaths.Fixture("llama-gqa"), "--device", "gpu");
        Assert.Equal(2, code);
        Assert.Contains("--device", stderr);
        Assert.Contains("cuda:N", stderr);
    }

    [NoCudaFact]
    public async Task CudaDevice_WithoutCuda_ExitsWith2_InsteadOfServingOnTheCpu()
    {
        // The GPU deployment passes --device cuda so that a node without a working CUDA fails its start (and the pod
        // restarts or is rescheduled) rather than serving a large model on the CPU.
        var (code, stderr) = await RunServerAsync("--model", RepositoryPaths.DefaultModel, "--device", "cuda");
        Assert.Equal(2, code);
        Assert.Contains("error: --device cuda: the CUDA execution provider cannot be used", stderr);
    }

    internal static async Task<(int Code, string Stderr)> RunServerAsync(params string[] args)
    {
        var (code, _, stderr) = await ServerCommand.RunAsync([.. args, "--urls", "http://127.0.0.1:0"]);
        return (code, stderr);
    }
}
