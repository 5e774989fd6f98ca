// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace InferenceServer.Builder.Safetensors;

/// <summary>
/// One <c>.safetensors</c> file: the JSON header is parsed on open, and the data section is memory-mapped so that
/// reading a tensor touches only its own pages. Tensors are converted to <see cref="float"/> one at a time.
/// </summary>
internal sealed class SafetensorsFile : IDisposable
{
    private const long MaxHeaderBytes = 100L * 1024 * 1024;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly long _dataStart;

    private SafetensorsFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, long dataStart, Dictionary<string, SafetensorsTensorInfo> tensors)
    {
        Path = path;
        _map = map;
        _view = view;
        _dataStart = dataStart;
        Tensors = tensors;
    }

    /// <summary>The file's full path.</summary>
    public string Path { get; }

    /// <summary>The header entries by tensor name.</summary>
    public IReadOnlyDictionary<string, SafetensorsTensorInfo> Tensors { get; }

    /// <summary>Opens <paramref name="path"/> and parses its header.</summary>
    /// <exception cref="ModelBuildException">The file is missing, truncated or has a malformed header.</exception>
    public static SafetensorsFile Open(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new ModelBuildException($"{full}: safetensors file does not exist");
        }

        var length = new FileInfo(full).Length;
        if (length < 8)
        {
            throw new ModelBuildException($"{full}: too short for a safetensors file ({length} bytes)");
        }

        var map = MemoryMappedFile.CreateFromFile(full, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        MemoryMappedViewAccessor? view = null;
        try
        {
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            var headerLength = view.ReadInt64(0);
            if (headerLength <= 0 || headerLength > MaxHeaderBytes || 8 + headerLength > length)
            {
                throw new ModelBuildException($"{full}: header length {headerLength} is not valid for a file of {length} bytes");
            }

            var header = new byte[headerLength];
            view.ReadArray(8, header, 0, header.Length);
            var dataStart = 8 + headerLength;
            var tensors = ParseHeader(full, header, length - dataStart);
            return new SafetensorsFile(full, map, view, dataStart, tensors);
        }
        catch
        {
            view?.Dispose();
            map.Dispose();
            throw;
        }
    }

    /// <summary>Reads tensor <paramref name="info"/> (which must belong to this file) converted to fp32.</summary>
    public float[] ReadFloat32(SafetensorsTensorInfo info)
    {
        var count = info.ElementCount;
        if (count > Array.MaxLength)
        {
            throw new ModelBuildException($"{Path}: tensor {info.Name} has {count} elements, more than one array can hold");
        }

        var result = new float[count];
        unsafe
        {
            byte* basePointer = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
            try
            {
                ConvertChunked(info.DType, basePointer + _view.PointerOffset + _dataStart + info.Begin, result, ChunkElements);
            }
            finally
            {
                _view.SafeMemoryMappedViewHandle.ReleasePointer();
            }
        }

        return result;
    }

    /// <summary>Elements converted per span: spans are int-indexed, and a large tensor's bytes exceed int.MaxValue.</summary>
    internal const int ChunkElements = 1 << 24;

    /// <summary>Converts <paramref name="destination"/>.Length elements at <paramref name="source"/>, <paramref name="chunk"/> at a time.</summary>
    internal static unsafe void ConvertChunked(SafetensorsDType dtype, byte* source, Span<float> destination, int chunk)
    {
        var size = dtype == SafetensorsDType.F32 ? 4 : 2;
        for (var start = 0; start < destination.Length; start += chunk)
        {
            var count = Math.Min(chunk, destination.Length - start);
            Convert(dtype, new ReadOnlySpan<byte>(source + ((long)start * size), count * size), destination.Slice(start, count));
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _view.Dispose();
        _map.Dispose();
    }

    /// <summary>Converts little-endian elements of <paramref name="dtype"/> to fp32.</summary>
    internal static void Convert(SafetensorsDType dtype, ReadOnlySpan<byte> source, Span<float> destination)
    {
        switch (dtype)
        {
            case SafetensorsDType.F32:
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                break;
            case SafetensorsDType.F16:
                for (var i = 0; i < destination.Length; i++)
                {
                    destination[i] = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(source[(2 * i)..]));
                }

                break;
            case SafetensorsDType.BF16:
                for (var i = 0; i < destination.Length; i++)
                {
                    destination[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(source[(2 * i)..]) << 16);
                }

                break;
            default:
                throw new ModelBuildException($"unsupported dtype {dtype}");
        }
    }

    private static Dictionary<string, SafetensorsTensorInfo> ParseHeader(string path, byte[] header, long dataLength)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header);
        }
        catch (JsonException ex)
        {
            throw new ModelBuildException($"{path}: header is not valid JSON ({ex.Message})", ex);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ModelBuildException($"{path}: header is not a JSON object");
            }

            var tensors = new Dictionary<string, SafetensorsTensorInfo>(StringComparer.Ordinal);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    continue;
                }

                tensors.Add(property.Name, ParseEntry(path, property, dataLength));
            }

            return tensors;
        }
    }

    private static SafetensorsTensorInfo ParseEntry(string path, JsonProperty property, long dataLength)
    {
        var entry = property.Value;
        if (entry.ValueKind != JsonValueKind.Object
            || !entry.TryGetProperty("dtype", out var dtypeElement)
            || !entry.TryGetProperty("shape", out var shapeElement)
            || !entry.TryGetProperty("data_offsets", out var offsetsElement)
            || offsetsElement.GetArrayLength() != 2)
        {
            throw new ModelBuildException($"{path}: tensor {property.Name} needs dtype, shape and data_offsets [begin, end]");
        }

        var dtype = dtypeElement.GetString() switch
        {
            "F32" => SafetensorsDType.F32,
            "F16" => SafetensorsDType.F16,
            "BF16" => SafetensorsDType.BF16,
            var other => throw new ModelBuildException($"{path}: tensor {property.Name} has dtype {other}; the builder reads F32, F16 and BF16"),
        };

        var shape = new long[shapeElement.GetArrayLength()];
        var index = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            shape[index++] = dim.GetInt64();
        }

        var begin = offsetsElement[0].GetInt64();
        var end = offsetsElement[1].GetInt64();
        var info = new SafetensorsTensorInfo(property.Name, dtype, shape, begin, end);
        if (begin < 0 || end < begin || end > dataLength || end - begin != info.ElementCount * info.ElementSize)
        {
            throw new ModelBuildException(
                $"{path}: tensor {property.Name} data_offsets [{begin}, {end}] do not fit its shape and dtype or the file ({dataLength} data bytes)");
        }

        return info;
    }
}
