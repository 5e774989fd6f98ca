// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;
using InferenceServer.Builder.Safetensors;

namespace InferenceServer.Builder.Tests.Safetensors;

public sealed class SafetensorsFileTests
{
    private static readonly float[] Values = [0f, 1f, -2.5f, 0.333251953125f, 65504f, -0.0001220703125f];

    [Fact]
    public void ReadFloat32_ConvertsF32F16AndBf16()
    {
        var path = Path.Combine(BuiltModels.TempDirectory("safetensors-dtypes"), "m.safetensors");
        var f16 = Values.Select(v => BitConverter.HalfToUInt16Bits((Half)v)).ToArray();
        var bf16 = Values.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray();
        SafetensorsWriter.Write(path, [
            ("a", "F32", [2, 3], MemoryMarshal.AsBytes(Values.AsSpan()).ToArray()),
            ("b", "F16", [6], MemoryMarshal.AsBytes(f16.AsSpan()).ToArray()),
            ("c", "BF16", [3, 2], MemoryMarshal.AsBytes(bf16.AsSpan()).ToArray()),
        ]);

        using var file = SafetensorsFile.Open(path);
        Assert.Equal(3, file.Tensors.Count);
        Assert.Equal([2L, 3L], file.Tensors["a"].Shape);
        Assert.Equal(Values, file.ReadFloat32(file.Tensors["a"]));
        Assert.Equal(Values, file.ReadFloat32(file.Tensors["b"]));
        var expectedBf16 = Values.Select(v => BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(v) & 0xFFFF0000)).ToArray();
        Assert.Equal(expectedBf16, file.ReadFloat32(file.Tensors["c"]));
    }

    [Theory]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,8]}}", "do not fit")]
    [InlineData("{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", "dtype I64")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", "data_offsets")]
    [InlineData("not json", "not valid JSON")]
    [InlineData("[1,2]", "not a JSON object")]
    public void Open_MalformedHeader_Throws(string header, string expected)
    {
        var path = Path.Combine(BuiltModels.TempDirectory("safetensors-bad"), Guid.NewGuid().ToString("N") + ".safetensors");
        SafetensorsWriter.Write(path, [("a", "F32", [2], new byte[8])], header);
        var ex = Assert.Throws<ModelBuildException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_HeaderLengthBeyondFile_Throws()
    {
        var path = Path.Combine(BuiltModels.TempDirectory("safetensors-bad"), "short.safetensors");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(1000L), .. "{}"u8.ToArray()]);
        var ex = Assert.Throws<ModelBuildException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains("header length", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("F32")]
    [InlineData("F16")]
    [InlineData("BF16")]
    public unsafe void ConvertChunked_SmallChunks_MatchOneSpan(string dtypeName)
    {
        var dtype = Enum.Parse<SafetensorsDType>(dtypeName);
        // Large tensors are converted in chunks (their bytes overflow one span); chunk edges must not shift elements.
        var values = Enumerable.Range(0, 11).Select(i => (float)(i - 5) / 4).ToArray();
        byte[] bytes = dtype switch
        {
            SafetensorsDType.F32 => MemoryMarshal.AsBytes(values.AsSpan()).ToArray(),
            SafetensorsDType.F16 => MemoryMarshal.AsBytes(values.Select(v => BitConverter.HalfToUInt16Bits((Half)v)).ToArray().AsSpan()).ToArray(),
            _ => MemoryMarshal.AsBytes(values.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray().AsSpan()).ToArray(),
        };
        var chunked = new float[values.Length];
        fixed (byte* pointer = bytes)
        {
            SafetensorsFile.ConvertChunked(dtype, pointer, chunked, 3);
        }

        Assert.Equal(values, chunked);
    }
}
