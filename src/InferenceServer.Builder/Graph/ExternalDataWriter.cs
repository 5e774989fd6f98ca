// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Runtime.InteropServices;
using Google.Protobuf;
using InferenceServer.Builder.Onnx.Proto;

namespace InferenceServer.Builder.Graph;

/// <summary>
/// Appends tensor bytes to the external data file (<c>model.onnx.data</c>) and describes them as ONNX
/// <see cref="TensorProto"/>s with <c>data_location = EXTERNAL</c>. Each tensor starts on a 64-byte boundary.
/// </summary>
internal sealed class ExternalDataWriter : IDisposable
{
    private const int Alignment = 64;
    private const int ChunkElements = 1 << 24;

    private readonly FileStream _stream;
    private readonly string _location;

    /// <summary>Creates (or truncates) the data file at <paramref name="path"/>; tensors name it by its file name.</summary>
    public ExternalDataWriter(string path)
    {
        _stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        _location = Path.GetFileName(path);
    }

    /// <summary>Bytes written so far.</summary>
    public long Length => _stream.Length;

    /// <summary>Writes fp32 <paramref name="data"/> and returns its initializer.</summary>
    public TensorProto WriteFloat32(string name, ReadOnlySpan<float> data, ReadOnlySpan<long> dims) =>
        Write(name, data, dims, TensorProto.Types.DataType.Float);

    /// <summary>
    /// Writes <paramref name="data"/> converted to <paramref name="type"/> (fp32 as is, fp16 by <see cref="Half"/>'s
    /// round-to-nearest-even, bf16 by <see cref="ElementTypes.ToBFloat16"/>) and returns its initializer.
    /// </summary>
    public TensorProto Write(string name, ReadOnlySpan<float> data, ReadOnlySpan<long> dims, TensorProto.Types.DataType type)
    {
        Pad();
        var offset = _stream.Position;
        var elementSize = ElementTypes.Size(type);
        if (type == TensorProto.Types.DataType.Float)
        {
            // In chunks: a large tensor's byte count exceeds what one span can index.
            for (var start = 0; start < data.Length; start += ChunkElements)
            {
                _stream.Write(MemoryMarshal.AsBytes(data.Slice(start, Math.Min(ChunkElements, data.Length - start))));
            }
        }
        else
        {
            var buffer = new ushort[Math.Min(ChunkElements, data.Length)];
            for (var start = 0; start < data.Length; start += ChunkElements)
            {
                var chunk = data.Slice(start, Math.Min(ChunkElements, data.Length - start));
                ElementTypes.Convert(chunk, buffer.AsSpan(0, chunk.Length), type);
                _stream.Write(MemoryMarshal.AsBytes(buffer.AsSpan(0, chunk.Length)));
            }
        }

        return Describe(name, type, dims, offset, (long)data.Length * elementSize);
    }

    /// <summary>Writes <paramref name="data"/> as they are (packed uint8 such as <c>MatMulNBits</c>' <c>B</c>) and returns its initializer.</summary>
    public TensorProto WriteBytes(string name, ReadOnlySpan<byte> data, ReadOnlySpan<long> dims)
    {
        Pad();
        var offset = _stream.Position;
        _stream.Write(data);
        return Describe(name, TensorProto.Types.DataType.Uint8, dims, offset, data.Length);
    }

    /// <inheritdoc />
    public void Dispose() => _stream.Dispose();

    private TensorProto Describe(string name, TensorProto.Types.DataType type, ReadOnlySpan<long> dims, long offset, long length)
    {
        var tensor = new TensorProto
        {
            Name = name,
            DataType = (int)type,
            DataLocation = TensorProto.Types.DataLocation.External,
        };
        foreach (var d in dims)
        {
            tensor.Dims.Add(d);
        }

        tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = _location });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(CultureInfo.InvariantCulture) });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = length.ToString(CultureInfo.InvariantCulture) });
        return tensor;
    }

    private void Pad()
    {
        var remainder = _stream.Position % Alignment;
        if (remainder != 0)
        {
            Span<byte> zeros = stackalloc byte[Alignment];
            zeros.Clear();
            _stream.Write(zeros[..(int)(Alignment - remainder)]);
        }
    }

    /// <summary>An inline (not external) initializer, for small constants such as shapes.</summary>
    public static TensorProto Inline<T>(string name, TensorProto.Types.DataType type, ReadOnlySpan<T> data, ReadOnlySpan<long> dims)
        where T : unmanaged
    {
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(data)) };
        foreach (var d in dims)
        {
            tensor.Dims.Add(d);
        }

        return tensor;
    }
}
