// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Cli;
using InferenceServer.Hosting;

// `build`, `inspect`, `rewrite`, `bench` and `<command> --help` are commands (Cli/CommandDispatch); anything else is the
// server's command line (`--help`, `--version`, or the options that start it).
return await CommandDispatch.TryRunAsync(args).ConfigureAwait(false) ?? await ServerProgram.RunAsync(args).ConfigureAwait(false);
