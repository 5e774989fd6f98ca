// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder;
using InferenceServer.Hosting;

// `InferenceServer build --checkpoint <dir> --out <dir>` and `InferenceServer inspect <model>` are the model builder's
// commands; anything else starts the server.
return args switch
{
    ["build", ..] => await BuilderCommand.RunAsync(args).ConfigureAwait(false),
    ["inspect", ..] => await InspectCommand.RunAsync(args).ConfigureAwait(false),
    _ => await ServerProgram.RunAsync(args).ConfigureAwait(false),
};
