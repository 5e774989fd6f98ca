// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Benchmarks;
using InferenceServer.Builder;
using InferenceServer.Hosting;
using InferenceServer.Hosting.CommandLine;

// `InferenceServer build --checkpoint <dir> --out <dir>` and `InferenceServer inspect <model>` are the model builder's
// commands; `InferenceServer rewrite <model folder> --out <dir>` writes the graph as the server rewrites it at load (ADR 0004);
// `InferenceServer bench latency --model <dir>` times the model runner alone; `<command> --help` prints a command's
// usage; anything else is the server's command line (`--help`, `--version`, or the options that start it).
if (CommandHelp.For(args) is { } usage)
{
    Console.Out.WriteLine(usage);
    return 0;
}

return args switch
{
    ["build", ..] => await BuilderCommand.RunAsync(args).ConfigureAwait(false),
    ["inspect", ..] => await InspectCommand.RunAsync(args).ConfigureAwait(false),
    ["rewrite", ..] => RewriteCommand.Run(args),
    ["bench", ..] => LatencyBenchmark.Run(args),
    _ => await ServerProgram.RunAsync(args).ConfigureAwait(false),
};
