// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using InferenceServer.Engine;
using InferenceServer.Hosting.Hub;

namespace InferenceServer.Hosting;

/// <summary>Model resolution (folder, checkpoint build, hub id) and the limits applied to the loaded model.</summary>
internal static partial class ServerProgram
{
    /// <summary>
    /// Resolves <c>--model</c> to a folder and loads it: a Hugging Face hub id (<c>&lt;org&gt;/&lt;name&gt;</c> that is
    /// not a local folder) from the hub cache or downloaded, a checkpoint through its cached build, else the folder itself;
    /// no <c>--model</c> is the embedded default.
    /// </summary>
    private static ServedModel LoadModel(ServerOptions options, StartupLog log)
    {
        if (options.Model is not { } given)
        {
            return ServedModel.Load(FindDefaultModel(), options.ServedModelName, options.Session);
        }

        var source = given;
        string? derivedName = null;
        if (HubModelId.TryParse(given, out var hubId) && !Directory.Exists(given))
        {
            try
            {
                source = HubModelResolver.Resolve(hubId, options.Revision, HubSettings.FromEnvironment(), log.Info);
            }
            catch (StartupException ex)
            {
                // A mistyped relative folder also looks like a hub id: say both.
                throw new StartupException($"{ex.Message} (read as a Hugging Face hub id: there is no folder {Path.GetFullPath(given)})", ex);
            }

            derivedName = hubId.ToString();
        }

        var folder = CheckpointBuilds.Resolve(source, options.BuildCache, options.DType, options.Session.Device, log.Info, split: options.Session.AttentionDevices.Count > 0);

        // A checkpoint served from its build keeps the checkpoint's folder name as its model id.
        derivedName ??= folder != source ? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(source))) : null;
        return ServedModel.Load(folder, options.ServedModelName ?? derivedName, options.Session);
    }

    /// <summary>
    /// Applies <c>--served-model-name</c>'s other names, <c>--max-model-len</c> and <c>--gpu-memory-utilization</c> to
    /// the loaded model; disposes it and throws <see cref="StartupException"/> when one cannot apply.
    /// </summary>
    private static void ApplyModelLimits(ServedModel model, ServerOptions options, StartupLog log)
    {
        model.AddAliases(options.ServedModelNames);
        try
        {
            if (options.MaxModelLength is { } cap)
            {
                var maximum = model.Decoder.Spec.ContextLength;
                if (cap > maximum)
                {
                    throw new StartupException($"--max-model-len {cap} is above the model's maximum context length {maximum} (max_position_embeddings in {model.Package.Directory}/config.json)");
                }

                model.LimitContext(cap);
            }

            if (options.GpuMemoryUtilization is { } fraction)
            {
                if (model.Decoder.DeviceTotalMemory is not { } total || model.Decoder.DeviceFreeMemory is not { } free)
                {
                    log.Info($"--gpu-memory-utilization has no effect on {model.Decoder.Device}: the KV cache is --kv-cache-memory's default");
                    return;
                }

                var budget = (fraction * total) - (total - free);
                if (budget < 1024 * 1024)
                {
                    throw new StartupException(string.Create(CultureInfo.InvariantCulture, $"--gpu-memory-utilization {fraction}: {total - free:N0} of the device's {total:N0} bytes are in use after the weights loaded, so {fraction:P0} leaves no room for the KV cache; raise it"));
                }

                options.Scheduler.KvCacheMemory = budget;
                log.Info(string.Create(CultureInfo.InvariantCulture, $"--gpu-memory-utilization {fraction}: {budget / (1024 * 1024):N0} MiB for the KV cache ({fraction:P0} of {total / (1024 * 1024):N0} MiB, less {(total - free) / (1024 * 1024):N0} MiB in use)"));
            }
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
