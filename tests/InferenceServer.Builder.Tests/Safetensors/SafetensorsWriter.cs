// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text;
using System.Text.Json;

namespace InferenceServer.Builder.Tests.Safetensors;

/// <summary>Writes safetensors files for tests: header JSON (8-byte little-endian length first), then the data.</summary>
internal static class SafetensorsWriter
{
    public static void Write(string path, IReadOnlyList<(string Name, string DType, long[] Shape, byte[] Data)> tensors, string? headerOverride = null)
    {
        var header = new Dictionary<string, object> { ["__metadata__"] = new Dictionary<string, string> { ["format"] = "pt" } };
        long offset = 0;
        foreach (var (name, dtype, shape, data) in tensors)
        {
            header[name] = new Dictionary<string, object> { ["dtype"] = dtype, ["shape"] = shape, ["data_offsets"] = new[] { offset, offset + data.Length } };
            offset += data.Length;
        }

        var json = Encoding.UTF8.GetBytes(headerOverride ?? JsonSerializer.Serialize(header));
        using var stream = File.Create(path);
        stream.Write(BitConverter.GetBytes((long)json.Length));
        stream.Write(json);
        foreach (var tensor in tensors)
        {
            stream.Write(tensor.Data);
        }
    }
}
