// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using InferenceServer.Builder;

namespace InferenceServer.Hosting;

/// <summary>
/// <c>--model &lt;checkpoint folder&gt;</c>: a folder with <c>config.json</c> and <c>*.safetensors</c> but no ONNX graph is built
/// once with the model builder into a cache folder (<c>--build-cache</c>), keyed by the checkpoint's path and its files'
/// names, sizes and modification times, and served from there on every later start.
/// </summary>
internal static class CheckpointBuilds
{
    /// <summary>The folder to serve for <paramref name="folder"/>: itself when it has a graph, else its cached build.</summary>
    /// <exception cref="StartupException">The checkpoint cannot be built.</exception>
    public static string Resolve(string folder, string? cacheRoot, Action<string> log)
    {
        if (!Directory.Exists(folder)
            || File.Exists(Path.Combine(folder, "model.onnx"))
            || File.Exists(Path.Combine(folder, "onnx", "model.onnx"))
            || Directory.GetFiles(folder, "*.safetensors").Length == 0)
        {
            // A model folder, or not a checkpoint: the package loader says what is wrong with it.
            return folder;
        }

        var output = Path.Combine(cacheRoot ?? DefaultCacheRoot(), Fingerprint(folder));
        if (File.Exists(Path.Combine(output, "model.onnx")))
        {
            log($"serving {folder} from its cached build {output}");
            return output;
        }

        log($"building {folder} into {output} (first start with this checkpoint)");
        var started = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var result = ModelBuilder.Build(new BuildOptions { CheckpointDirectory = folder, OutputDirectory = output });
            log($"built {result.Architecture}: {result.LayerCount} layers, {result.ParameterCount:N0} parameters, {result.KvBytesPerToken} KV bytes per token, in {started.Elapsed.TotalSeconds:F1} s");
        }
        catch (ModelBuildException ex)
        {
            throw new StartupException($"{folder}: the checkpoint cannot be built: {ex.Message}", ex);
        }

        return output;
    }

    /// <summary><c>$XDG_CACHE_HOME/inferenceserver/builds</c>, else <c>~/.cache/inferenceserver/builds</c>.</summary>
    internal static string DefaultCacheRoot()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "inferenceserver", "builds");
    }

    /// <summary>A key that changes when the checkpoint's path or any of its files change.</summary>
    internal static string Fingerprint(string folder)
    {
        var full = Path.GetFullPath(folder);
        var text = new StringBuilder(full).Append('\n');
        foreach (var file in Directory.GetFiles(full).Order(StringComparer.Ordinal))
        {
            var info = new FileInfo(file);
            text.Append(info.Name).Append('|').Append(info.Length.ToString(CultureInfo.InvariantCulture)).Append('|')
                .Append(info.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16];
        return Path.GetFileName(full.TrimEnd(Path.DirectorySeparatorChar)) + "-" + hash;
    }
}
