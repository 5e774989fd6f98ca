using System.Diagnostics;
using System.Text.Json;
using InferenceServer.FunctionalTests.Infrastructure;
using InferenceServer.Grpc.V1;
using InferenceServer.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// The real executable's command line: --help and --version print and exit, unknown or valueless flags exit 2 naming
/// the closest flag, vLLM's spellings work, JSON logs are JSON from the first line, an unwritable build cache is one line.
/// </summary>
public sealed class CommandLineTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("command-line-").FullName;

    public void Dispose() => Directory.Delete(_work, recursive: true);

    [Fact]
    public async Task Help_PrintsEveryFlag_AndStartsNoServer()
    {
        var (code, stdout, _) = await RunAsync("--help");
        Assert.Equal(0, code);
        Assert.StartsWith("usage: InferenceServer", stdout, StringComparison.Ordinal);
        Assert.Contains("--max-model-len <n>", stdout, StringComparison.Ordinal);
        Assert.Contains("--gpu-memory-utilization", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("Now listening", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Version_PrintsTheServersAndOnnxRuntimesVersions()
    {
        var (code, stdout, _) = await RunAsync("--version");
        Assert.Equal(0, code);
        Assert.Matches(@"^InferenceServer \d+\.\d+", stdout);
        Assert.Matches(@"\nONNX Runtime \d+\.\d+\.\d+", stdout);
    }

    [Theory]
    [InlineData("build --help", "usage: InferenceServer build")]
    [InlineData("inspect --help", "usage: InferenceServer inspect")]
    [InlineData("rewrite --help", "usage: InferenceServer rewrite")]
    [InlineData("bench latency --help", "usage: InferenceServer bench latency")]
    public async Task CommandHelp_PrintsItsUsage_AndExits0(string args, string usage)
    {
        var (code, stdout, _) = await RunAsync(args.Split(' '));
        Assert.Equal(0, code);
        Assert.StartsWith(usage, stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--max-num-seq 4", "did you mean --max-num-seqs?")]
    [InlineData("--max-model-len", "--max-model-len needs a whole number")]
    [InlineData("serve", "unexpected argument 'serve'")]
    [InlineData("--port 8000 --urls http://127.0.0.1:0", "--urls and --host/--port")]
    [InlineData("--enable-prefix-caching --max-num-seqs", "--max-num-seqs needs a whole number")]
    public async Task BadCommandLine_ExitsWith2_InOneLine(string args, string message)
    {
        var (code, _, stderr) = await RunAsync(args.Split(' '));
        Assert.Equal(2, code);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    [Fact]
    public async Task MaxModelLen_AboveTheModels_ExitsWith2()
    {
        var (code, _, stderr) = await RunAsync("--model", RepositoryPaths.DefaultModel, "--urls", "http://127.0.0.1:0", "--max-model-len", "1000000");
        Assert.Equal(2, code);
        Assert.Contains("--max-model-len 1000000 is above the model's maximum context length", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task JsonLogs_AreJsonFromTheFirstLine_AndVllmSpellingsApply()
    {
        await using var server = await ServerProcess.StartAsync("--max-model-len", "512", "--served-model-name", "coder", "alias", "--no-enable-prefix-caching", "--gpu-memory-utilization", "0.9");

        // Every stdout line is a JSON object, the startup lines (device, graph rewrite) included.
        var events = server.Events;
        Assert.Contains("runs on", events[0].GetProperty("@m").GetString(), StringComparison.Ordinal);
        Assert.Equal(StartupLog.Category, events[0].GetProperty("SourceContext").GetString());
        Assert.Contains(events, e => e.GetProperty("@m").GetString()!.StartsWith("--gpu-memory-utilization has no effect on cpu", StringComparison.Ordinal));

        using var models = JsonDocument.Parse(await server.Http.GetStringAsync("/v1/models"));
        var card = Assert.Single(models.RootElement.GetProperty("data").EnumerateArray());
        Assert.Equal("coder", card.GetProperty("id").GetString());
        Assert.Equal(512, card.GetProperty("max_model_len").GetInt32());

        using var alias = await server.Http.GetAsync("/v1/models/alias");
        Assert.Equal(System.Net.HttpStatusCode.OK, alias.StatusCode);
        using var tokenize = await server.Http.PostAsync("/tokenize", new StringContent("""{"model":"alias","prompt":"def f():"}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(512, JsonDocument.Parse(await tokenize.Content.ReadAsStringAsync()).RootElement.GetProperty("max_model_len").GetInt32());

        // A prompt plus max_tokens beyond the cap is refused, as vLLM does.
        using var tooLong = await server.Http.PostAsync("/v1/completions", new StringContent("""{"model":"alias","prompt":"def f():","max_tokens":600}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, tooLong.StatusCode);
    }

    [Fact]
    public async Task MaxModelLen_AndServedNames_ReachGrpc()
    {
        await using var server = await TestServer.StartAsync(RepositoryPaths.DefaultModel, "--max-model-len", "256", "--served-model-name", "coder", "alias");
        var info = await server.Grpc!.GetModelInfoAsync(new GetModelInfoRequest { Model = "alias" }).ResponseAsync.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(256u, info.ContextLength);
        Assert.Equal("coder", info.Id);
    }

    [Theory]
    [InlineData("--model", "/nonexistent/model")]
    [InlineData("--max-num-seq", "4")]
    public async Task JsonLogs_StartupError_IsOneJsonLineOnStderr(string flag, string value)
    {
        var (code, stdout, stderr) = await RunAsync("--log-format", "json", flag, value, "--urls", "http://127.0.0.1:0");
        Assert.Equal(2, code);
        Assert.Equal(string.Empty, stdout);
        using var line = JsonDocument.Parse(Assert.Single(stderr.Trim().Split('\n')));
        Assert.Equal("Fatal", line.RootElement.GetProperty("@l").GetString());
        Assert.Contains(flag == "--model" ? value : "--max-num-seqs", line.RootElement.GetProperty("@m").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task HostAndPort_SetTheListenAddress()
    {
        await using var app = ServerProgram.Build(["--model", RepositoryPaths.DefaultModel, "--host", "127.0.0.1", "--port", "0"]);
        await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(60));
        var address = Assert.Single(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses);
        Assert.StartsWith("http://127.0.0.1:", address, StringComparison.Ordinal);
        using var http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromSeconds(60) };
        Assert.Equal("live", await http.GetStringAsync("/health/live"));
        await app.StopAsync().WaitAsync(TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task UnwritableBuildCache_ExitsWith2_SayingWhatToDo()
    {
        var checkpoint = Path.Combine(_work, "llama-gqa");
        Directory.CreateDirectory(checkpoint);
        foreach (var name in (string[])["config.json", "generation_config.json", "model.safetensors"])
        {
            File.Copy(Path.Combine(RepositoryPaths.Fixture("llama-gqa"), name), Path.Combine(checkpoint, name));
        }

        // A cache under a regular file cannot be created, even by root (who writes read-only folders).
        var blocker = Path.Combine(_work, "not-a-folder");
        File.WriteAllText(blocker, "x");
        var (code, _, stderr) = await RunAsync("--model", checkpoint, "--build-cache", Path.Combine(blocker, "cache"), "--urls", "http://127.0.0.1:0");
        Assert.Equal(2, code);
        Assert.Contains("--build-cache", stderr, StringComparison.Ordinal);
        Assert.Contains("writable", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    [Fact]
    public async Task DotnetRun_RunsTheAppWhereTheCommandWasTyped()
    {
        // dotnet run takes the working directory from RunWorkingDirectory; evaluated from another folder, it is that folder.
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = _work, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in (string[])["msbuild", Path.Combine(RepositoryPaths.Root, "src", "InferenceServer", "InferenceServer.csproj"), "-getProperty:RunWorkingDirectory", "-nologo"])
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
        Assert.Equal(0, process.ExitCode);
        Assert.Equal(Path.TrimEndingDirectorySeparator(_work), Path.TrimEndingDirectorySeparator((await stdout).Trim()));
    }

    private static Task<(int Code, string Stdout, string Stderr)> RunAsync(params string[] args) => ServerCommand.RunAsync(args);
}
