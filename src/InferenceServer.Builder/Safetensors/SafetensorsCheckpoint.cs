// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;

namespace InferenceServer.Builder.Safetensors;

/// <summary>
/// The weights of a checkpoint folder: a single <c>model.safetensors</c>, shards listed in
/// <c>model.safetensors.index.json</c>, or (without an index) every <c>*.safetensors</c> in the folder.
/// Every file's header is read on open; tensor data is read on demand, one tensor at a time.
/// </summary>
internal sealed class SafetensorsCheckpoint : IDisposable
{
    private readonly List<SafetensorsFile> _files;
    private readonly Dictionary<string, SafetensorsFile> _owner;

    private SafetensorsCheckpoint(List<SafetensorsFile> files, Dictionary<string, SafetensorsFile> owner)
    {
        _files = files;
        _owner = owner;
    }

    /// <summary>All tensor names, in no particular order.</summary>
    public IEnumerable<string> Names => _owner.Keys;

    /// <summary>Opens the safetensors weights of <paramref name="directory"/>.</summary>
    /// <exception cref="ModelBuildException">No weights, a shard the index names is missing, or a tensor is in two files.</exception>
    public static SafetensorsCheckpoint Open(string directory)
    {
        var indexPath = Path.Combine(directory, "model.safetensors.index.json");
        List<string> paths;
        if (File.Exists(indexPath))
        {
            paths = ReadIndex(indexPath, directory);
        }
        else
        {
            paths = [.. Directory.GetFiles(directory, "*.safetensors").Order(StringComparer.Ordinal)];
            if (paths.Count == 0)
            {
                throw new ModelBuildException($"{directory}: no model.safetensors, model.safetensors.index.json or *.safetensors");
            }
        }

        var files = new List<SafetensorsFile>(paths.Count);
        var owner = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var path in paths)
            {
                var file = SafetensorsFile.Open(path);
                files.Add(file);
                foreach (var name in file.Tensors.Keys)
                {
                    if (!owner.TryAdd(name, file))
                    {
                        throw new ModelBuildException($"{directory}: tensor {name} is in both {owner[name].Path} and {file.Path}");
                    }
                }
            }
        }
        catch
        {
            foreach (var file in files)
            {
                file.Dispose();
            }

            throw;
        }

        return new SafetensorsCheckpoint(files, owner);
    }

    /// <summary>Whether the checkpoint has tensor <paramref name="name"/>.</summary>
    public bool Contains(string name) => _owner.ContainsKey(name);

    /// <summary>The header entry of <paramref name="name"/>.</summary>
    /// <exception cref="ModelBuildException">The checkpoint has no such tensor.</exception>
    public SafetensorsTensorInfo Info(string name) => Owner(name).Tensors[name];

    /// <summary>Reads <paramref name="name"/> as fp32, checking its shape against <paramref name="expectedShape"/>.</summary>
    /// <exception cref="ModelBuildException">The tensor is missing or has another shape.</exception>
    public float[] ReadFloat32(string name, params long[] expectedShape)
    {
        var file = Owner(name);
        var info = file.Tensors[name];
        if (!info.Shape.AsSpan().SequenceEqual(expectedShape))
        {
            throw new ModelBuildException(
                $"{file.Path}: tensor {name} has shape [{string.Join(", ", info.Shape)}]; the config implies [{string.Join(", ", expectedShape)}]");
        }

        return file.ReadFloat32(info);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var file in _files)
        {
            file.Dispose();
        }
    }

    private SafetensorsFile Owner(string name) =>
        _owner.TryGetValue(name, out var file) ? file : throw new ModelBuildException($"checkpoint has no tensor {name}");

    private static List<string> ReadIndex(string indexPath, string directory)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(indexPath));
            if (!document.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            {
                throw new ModelBuildException($"{indexPath}: missing the weight_map object");
            }

            var seen = new SortedSet<string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                var shard = entry.Value.GetString();
                if (string.IsNullOrEmpty(shard) || shard.Contains("..", StringComparison.Ordinal) || Path.IsPathRooted(shard))
                {
                    throw new ModelBuildException($"{indexPath}: tensor {entry.Name} maps to an invalid shard name '{shard}'");
                }

                seen.Add(shard);
            }

            var paths = new List<string>(seen.Count);
            foreach (var shard in seen)
            {
                var path = Path.Combine(directory, shard);
                if (!File.Exists(path))
                {
                    throw new ModelBuildException($"{indexPath}: shard {shard} is listed but missing");
                }

                paths.Add(path);
            }

            return paths;
        }
        catch (JsonException ex)
        {
            throw new ModelBuildException($"{indexPath}: not valid JSON ({ex.Message})", ex);
        }
    }
}
