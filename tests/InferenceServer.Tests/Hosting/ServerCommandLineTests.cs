using InferenceServer.Cli;
using InferenceServer.Hosting;
using InferenceServer.Hosting.CommandLine;

namespace InferenceServer.Tests.Hosting;

/// <summary>The server's command line is checked against the one flag table: unknown, stray and valueless words are errors.</summary>
public sealed class ServerCommandLineTests
{
    [Theory]
    [InlineData("--max-num-seq", "--max-num-seqs")]
    [InlineData("--max-model-length", "--max-model-len")]
    [InlineData("--enable-prefix-cache", "--enable-prefix-caching")]
    [InlineData("--gpu-memory-utilisation", "--gpu-memory-utilization")]
    public void UnknownFlag_IsAnError_NamingTheClosestFlag(string typo, string closest)
    {
        var error = Assert.Throws<StartupException>(() => ServerCommandLine.Parse([typo, "4"]));
        Assert.Contains("unknown option " + typo, error.Message, StringComparison.Ordinal);
        Assert.Contains("did you mean " + closest + "?", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("serve")]
    [InlineData("models/tiny-pycoder")]
    [InlineData("-x")]
    public void StrayWord_IsAnError(string word)
    {
        var error = Assert.Throws<StartupException>(() => ServerCommandLine.Parse(["--threads", "1", word]));
        Assert.Contains(word, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "--max-num-seqs" }, "--max-num-seqs needs a whole number")]
    [InlineData(new[] { "--max-num-seqs", "--threads", "1" }, "--max-num-seqs needs a whole number, not the option --threads")]
    [InlineData(new[] { "--model" }, "--model needs a value")]
    [InlineData(new[] { "--served-model-name", "--threads", "1" }, "--served-model-name needs at least one value")]
    [InlineData(new[] { "--max-num-seqs", "many" }, "--max-num-seqs needs a whole number, not 'many'")]
    [InlineData(new[] { "--kv-cache-memory", "lots" }, "--kv-cache-memory needs a size")]
    [InlineData(new[] { "--log-format", "xml" }, "--log-format needs one of text, json")]
    [InlineData(new[] { "--gpu-memory-utilization", "2" }, "--gpu-memory-utilization needs a fraction")]
    [InlineData(new[] { "--enable-prefix-caching=maybe" }, "--enable-prefix-caching must be true or false")]
    [InlineData(new[] { "--urls" }, "--urls needs a value")]
    public void FlagWithoutItsValue_IsAnError_NamingIt(string[] args, string message)
    {
        var error = Assert.Throws<StartupException>(() => ServerCommandLine.Parse(args));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "--enable-prefix-caching", "--model", "m" }, "true")]
    [InlineData(new[] { "--model", "m", "--enable-prefix-caching" }, "true")]
    [InlineData(new[] { "--enable-prefix-caching", "false", "--model", "m" }, "false")]
    [InlineData(new[] { "--enable-prefix-caching=False", "--model", "m" }, "false")]
    [InlineData(new[] { "--no-enable-prefix-caching", "--model", "m" }, "false")]
    [InlineData(new[] { "--enable_prefix_caching", "--model", "m" }, "true")]
    public void BooleanFlag_TakesNoValue_TrueFalse_OrItsNoForm(string[] args, string expected)
    {
        var parsed = ServerCommandLine.Parse(args);
        Assert.Equal(expected, parsed.Values["enable-prefix-caching"]);
        Assert.Equal("m", parsed.Values["model"]);
    }

    [Fact]
    public void NoForm_OfANonBooleanFlag_IsUnknown()
        => Assert.Throws<StartupException>(() => ServerCommandLine.Parse(["--no-threads"]));

    [Theory]
    [InlineData(new[] { "--served-model-name", "a", "b", "--threads", "1" }, "a,b")]
    [InlineData(new[] { "--served-model-name", "a", "--served-model-name", "b" }, "a,b")]
    [InlineData(new[] { "--served-model-name=a,b" }, "a,b")]
    [InlineData(new[] { "--served-model-name", "a" }, "a")]
    public void RepeatableFlag_TakesSeveralValues(string[] args, string expected)
        => Assert.Equal(expected, ServerCommandLine.Parse(args).Values["served-model-name"]);

    [Theory]
    [InlineData(new[] { "--port", "8000" }, "http://localhost:8000")]
    [InlineData(new[] { "--host", "0.0.0.0", "--port", "8000" }, "http://0.0.0.0:8000")]
    [InlineData(new[] { "--host", "::1", "--port", "0" }, "http://[::1]:0")]
    [InlineData(new[] { "--host", "127.0.0.1" }, "http://127.0.0.1:5000")]
    [InlineData(new[] { "--urls", "http://127.0.0.1:1;http://[::1]:1" }, "http://127.0.0.1:1;http://[::1]:1")]
    public void HostAndPort_BecomeUrls(string[] args, string urls)
    {
        var parsed = ServerCommandLine.Parse(args);
        Assert.Equal(urls, parsed.Values["urls"]);
        Assert.False(parsed.Values.ContainsKey("port"));
    }

    [Theory]
    [InlineData(new[] { "--port", "8000", "--urls", "http://127.0.0.1:1" }, "--urls and --host/--port")]
    [InlineData(new[] { "--port", "70000" }, "--port must be a port number")]
    public void ListenAddress_Conflicts_AreErrors(string[] args, string message)
        => Assert.Contains(message, Assert.Throws<StartupException>(() => ServerCommandLine.Parse(args)).Message, StringComparison.Ordinal);

    [Fact]
    public void AspNetCoreKeys_AndConfigurationPaths_PassThrough()
    {
        var parsed = ServerCommandLine.Parse(["--urls", "http://127.0.0.1:0", "--Logging:LogLevel:Default", "Warning", "--environment=Development", "--http_ports", "8080"]);
        Assert.Equal(
            ["--urls=http://127.0.0.1:0", "--Logging:LogLevel:Default=Warning", "--environment=Development", "--http_ports=8080"],
            parsed.ToConfigurationArgs());
    }

    [Theory]
    [InlineData("--help", true, false)]
    [InlineData("-h", true, false)]
    [InlineData("--version", false, true)]
    public void HelpAndVersion_AreFlags(string arg, bool help, bool version)
    {
        var parsed = ServerCommandLine.Parse(["--model", "m", arg]);
        Assert.Equal(help, parsed.Help);
        Assert.Equal(version, parsed.Version);
    }

    [Theory]
    [InlineData("max-connections", "Int")]
    [InlineData("keep-alive-timeout", "Seconds")]
    [InlineData("metrics-require-key", "Bool")]
    [InlineData("grpc-max-message-size", "Size")]
    [InlineData("attention-device", "Repeatable")]
    [InlineData("liveness-stall-timeout", "Seconds")]
    public void FlagsOfTheHardeningDeploymentAndOffloadingWork_AreInTheTable(string name, string kind)
        => Assert.Equal(kind, ServerFlags.Find(name)?.Kind.ToString());

    [Fact]
    public void AttentionDevice_IsCommaJoined()
        => Assert.Equal("cpu,cuda:1", ServerCommandLine.Parse(["--attention-device", "cpu", "--attention-device", "cuda:1"]).Values["attention-device"]);

    [Fact]
    public void Help_ListsEveryFlag_WithItsVllmSpelling()
    {
        var help = HelpText.Server();
        foreach (var flag in ServerFlags.All)
        {
            Assert.Contains("--" + flag.Name + " ", help, StringComparison.Ordinal);
        }

        Assert.Contains("(vLLM: --timeout-keep-alive)", help, StringComparison.Ordinal);
        Assert.Contains("no effect on the CPU", help, StringComparison.Ordinal);
    }

    [Fact]
    public void Flags_HaveUniqueNames_AndEnumsTheirValues()
    {
        Assert.Equal(ServerFlags.All.Count, ServerFlags.All.Select(f => f.Name).Distinct(StringComparer.OrdinalIgnoreCase).Count());
        Assert.All(ServerFlags.All.Where(f => f.Kind == FlagKind.Enum), f => Assert.NotEmpty(f.Values));
    }

    [Theory]
    [InlineData("kitten", "sitting", 3)]
    [InlineData("max-num-seq", "max-num-seqs", 1)]
    [InlineData("", "abc", 3)]
    [InlineData("same", "same", 0)]
    public void EditDistance_IsLevenshtein(string a, string b, int expected)
        => Assert.Equal(expected, ServerCommandLine.EditDistance(a, b));

    [Theory]
    [InlineData(new[] { "build", "--help" }, "usage: InferenceServer build")]
    [InlineData(new[] { "inspect", "-h" }, "usage: InferenceServer inspect")]
    [InlineData(new[] { "rewrite", "--help" }, "usage: InferenceServer rewrite")]
    [InlineData(new[] { "bench", "latency", "--help" }, "usage: InferenceServer bench latency")]
    public void CommandHelp_IsTheCommandsUsage(string[] args, string usage)
        => Assert.StartsWith(usage, CommandHelp.For(args), StringComparison.Ordinal);

    [Fact]
    public void CommandHelp_IsNullForTheServer()
        => Assert.Null(CommandHelp.For(["--help"]));
}
