using System.Diagnostics;
using InferenceServer.FunctionalTests.Infrastructure;

namespace InferenceServer.FunctionalTests;

/// <summary>
/// The official OpenAI Node client (npm <c>openai</c>, pinned in <c>tests/node-client/package-lock.json</c>) runs
/// <c>tests/node-client/suite.mjs</c> against a completions server and a chat server: every parameter, streamed and not,
/// and the invalid values. <c>.ci/run</c> installs the package with <c>npm ci</c>; this test does it too when missing.
/// </summary>
public sealed class NodeClientTests(DefaultModelServer completions, ChatModelServer chat) : IClassFixture<DefaultModelServer>, IClassFixture<ChatModelServer>
{
    private static readonly string SuiteFolder = Path.Combine(RepositoryPaths.Root, "tests", "node-client");

    [Fact]
    public async Task OfficialNodeClient_PassesTheSuite()
    {
        if (!Directory.Exists(Path.Combine(SuiteFolder, "node_modules", "openai")))
        {
            var (installCode, installOutput) = await RunAsync("npm", "ci --no-audit --no-fund", TimeSpan.FromMinutes(5));
            Assert.True(installCode == 0, "npm ci failed in tests/node-client:\n" + installOutput);
        }

        var (code, output) = await RunAsync("node", $"suite.mjs {completions.Server.BaseAddress} {chat.Server.BaseAddress}", TimeSpan.FromMinutes(5));
        Assert.True(code == 0, output);
        Assert.Contains("all checks passed", output);
    }

    private static async Task<(int Code, string Output)> RunAsync(string program, string arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(program, arguments)
        {
            WorkingDirectory = SuiteFolder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancellation = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancellation.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {arguments} ran past {timeout}:\n{await stdout}\n{await stderr}");
        }

        return (process.ExitCode, await stdout + await stderr);
    }
}
