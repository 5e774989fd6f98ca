// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Hosting;

return await ServerProgram.RunAsync(args).ConfigureAwait(false);
