// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder;

namespace InferenceServer.Cli;

/// <summary>
/// The commands beside the server: <c>InferenceServer build --checkpoint &lt;dir&gt; --out &lt;dir&gt;</c> and
/// <c>InferenceServer inspect &lt;model&gt;</c> (the model builder's), <c>InferenceServer rewrite &lt;model folder&gt; --out &lt;dir&gt;</c>
/// (the graph as the server rewrites it at load, ADR 0004), <c>InferenceServer bench latency --model &lt;dir&gt;</c> (the
/// model runner alone), and <c>&lt;command&gt; --help</c> (a command's usage). Anything else is the server's command line.
/// </summary>
internal static class CommandDispatch
{
    /// <summary>Runs the command that <paramref name="args"/> name and returns its exit code; null when they name none (the server's command line).</summary>
    public static async Task<int?> TryRunAsync(string[] args)
    {
        if (CommandHelp.For(args) is { } usage)
        {
            await Console.Out.WriteLineAsync(usage).ConfigureAwait(false);
            return 0;
        }

        return args switch
        {
            ["build", ..] => await BuilderCommand.RunAsync(args).ConfigureAwait(false),
            ["inspect", ..] => await InspectCommand.RunAsync(args).ConfigureAwait(false),
            ["rewrite", ..] => RewriteCommand.Run(args),
            ["bench", ..] => LatencyBenchmark.Run(args),
            _ => null,
        };
    }
}
