// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder;

namespace InferenceServer.Cli;

/// <summary><c>InferenceServer &lt;command&gt; --help</c>: the usage of <c>build</c>, <c>inspect</c>, <c>rewrite</c> and <c>bench latency</c>.</summary>
internal static class CommandHelp
{
    /// <summary>The usage text when <paramref name="args"/> name a command and ask for help (<c>--help</c> or <c>-h</c>), else null.</summary>
    public static string? For(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Count < 2 || !(args.Contains("--help") || args.Contains("-h")))
        {
            return null;
        }

        return args[0] switch
        {
            "build" => BuilderCommand.Usage,
            "inspect" => InspectCommand.Usage,
            "rewrite" => RewriteCommand.Usage,
            "bench" => LatencyBenchmark.Usage,
            _ => null,
        };
    }
}
