// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using InferenceServer.Builder;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Hosting;

/// <summary>
/// <c>--model &lt;checkpoint folder&gt;</c>: a folder with <c>config.json</c> and <c>*.safetensors</c> but no ONNX graph is built
/// once with the model builder into a cache folder (<c>--build-cache</c>), keyed by the checkpoint's path, its files'
/// names, sizes and modification times, and the build's dtype and device, and served from there on every later start.
/// The build targets CUDA only when <c>--device</c> names it (<c>cuda</c> or <c>cuda:N</c>): whether <c>auto</c> finds
/// a GPU is only known once ONNX Runtime loads the model, so <c>auto</c> builds for the CPU (fp32, which CUDA runs too).
/// </summary>
internal static class CheckpointBuilds
{
    /// <summary>The folder to serve for <paramref name="folder"/>: itself when it has a graph, else its cached build.</summary>
    /// <exception cref="StartupException">The checkpoint cannot be built.</exception>
    /// <remarks>
    /// A checkpoint is built in <paramref name="dtype"/> (<c>auto</c>, <c>fp32</c>, <c>fp16</c>, <c>bf16</c>) for the
    /// server's <paramref name="device"/> (<c>auto</c>, <c>cpu</c>, <c>cuda</c>, <c>cuda:N</c>); see <see cref="BuildTarget"/>.
    /// With <paramref name="split"/> (attention offloading, ADR 0005) the build also has the split form, and is cached apart.
    /// </remarks>
    public static string Resolve(string folder, string? cacheRoot, string dtype, string device, Action<string> log, bool split = false)
    {
        if (!Directory.Exists(folder)
            || File.Exists(Path.Combine(folder, "model.onnx"))
            || File.Exists(Path.Combine(folder, "onnx", "model.onnx"))
            || Directory.GetFiles(folder, "*.safetensors").Length == 0)
        {
            // A model folder, or not a checkpoint: the package loader says what is wrong with it.
            return folder;
        }

        var (buildDType, buildDevice) = BuildTarget(dtype, device);
        cacheRoot ??= DefaultCacheRoot();
        var output = Path.Combine(cacheRoot, Fingerprint(folder, buildDType, buildDevice + (split ? "-split" : string.Empty)));
        if (File.Exists(Path.Combine(output, "model.onnx")))
        {
            log($"serving {folder} from its cached build {output}");
            return output;
        }

        RequireWritable(cacheRoot, output, folder);
        log($"building {folder} into {output} ({buildDType} for {buildDevice}{(split ? ", with the split form for --attention-device" : string.Empty)}; first start with this checkpoint and target)");
        var started = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var result = ModelBuilder.Build(new BuildOptions { CheckpointDirectory = folder, OutputDirectory = output, DType = buildDType, Device = buildDevice, Split = split });
            log($"built {result.Architecture} ({result.Graph}, {result.DType}): {result.LayerCount} layers, {result.ParameterCount:N0} parameters, {result.KvBytesPerToken} KV bytes per token, in {started.Elapsed.TotalSeconds:F1} s");
        }
        catch (ModelBuildException ex)
        {
            throw new StartupException($"{folder}: the checkpoint cannot be built: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StartupException($"--build-cache {cacheRoot}: writing the build of {folder} failed ({ex.Message}); {WhatToDo}", ex);
        }

        return output;
    }

    private const string WhatToDo = "give --build-cache a writable folder (in a container, a writable volume), or build the checkpoint ahead with `InferenceServer build --checkpoint <dir> --out <dir>` and pass --model <that folder>";

    /// <summary>
    /// Checks that the build can be written, only when a build is needed (a cached build or an ONNX folder is only
    /// read, so a read-only cache or root file system serves those): creates <paramref name="output"/> and a probe file
    /// in it, and turns a refusal into one line that says what to do.
    /// </summary>
    /// <exception cref="StartupException">The cache folder cannot be written.</exception>
    internal static void RequireWritable(string cacheRoot, string output, string folder)
    {
        try
        {
            Directory.CreateDirectory(output);
            var probe = Path.Combine(output, ".write-test");
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StartupException($"--build-cache {cacheRoot} is not writable ({ex.Message}), and the checkpoint {folder} must be built once; {WhatToDo}", ex);
        }
    }

    /// <summary>
    /// The builder's dtype and device for the server's <c>--dtype</c> and <c>--device</c>: <c>cuda</c> and <c>cuda:N</c>
    /// build for cuda, <c>cpu</c> and <c>auto</c> for cpu; dtype <c>auto</c> is fp16 for cuda, else fp32.
    /// </summary>
    /// <exception cref="StartupException">The device is not one of those.</exception>
    internal static (string DType, string Device) BuildTarget(string dtype, string device)
    {
        DeviceRequest request;
        try
        {
            request = DeviceRequest.Parse(device);
        }
        catch (ExecutionProviderException ex)
        {
            throw new StartupException(ex.Message, ex);
        }

        var target = request.Cuda && !request.Auto ? "cuda" : "cpu";
        return (dtype == "auto" ? (target == "cuda" ? "fp16" : "fp32") : dtype, target);
    }

    /// <summary><c>$XDG_CACHE_HOME/inferenceserver/builds</c>, else <c>~/.cache/inferenceserver/builds</c>.</summary>
    internal static string DefaultCacheRoot()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "inferenceserver", "builds");
    }

    /// <summary>A key that changes when the checkpoint's path, any of its files, or the build's dtype or device change.</summary>
    internal static string Fingerprint(string folder, string dtype, string device)
    {
        var full = Path.GetFullPath(folder);
        var text = new StringBuilder(full).Append('\n').Append(dtype).Append('|').Append(device).Append('\n');
        foreach (var file in Directory.GetFiles(full).Order(StringComparer.Ordinal))
        {
            var info = new FileInfo(file);
            text.Append(info.Name).Append('|').Append(info.Length.ToString(CultureInfo.InvariantCulture)).Append('|')
                .Append(info.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16];
        return Path.GetFileName(full.TrimEnd(Path.DirectorySeparatorChar)) + "-" + dtype + "-" + device + "-" + hash;
    }
}
