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
            var (installCode, installOut, installErr) = await ExternalTools.RunAsync("npm", SuiteFolder, TimeSpan.FromMinutes(5), "ci", "--no-audit", "--no-fund");
            Assert.True(installCode == 0, "npm ci failed in tests/node-client:\n" + installOut + installErr);
        }

        var (code, stdout, stderr) = await ExternalTools.RunAsync("node", SuiteFolder, TimeSpan.FromMinutes(5), "suite.mjs", completions.Server.BaseAddress.ToString(), chat.Server.BaseAddress.ToString());
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("all checks passed", stdout);
    }
}
