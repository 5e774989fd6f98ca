using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Tests.Attention;

/// <summary><see cref="HostKvPool"/>: sizes, raw block copies and argument checks.</summary>
public sealed class HostKvPoolTests
{
    [Theory]
    [InlineData(KvStorage.Float32, 4)]
    [InlineData(KvStorage.Float16, 2)]
    [InlineData(KvStorage.BFloat16, 2)]
    public void Sizes_CountEveryLayerKeyAndValue(KvStorage storage, int elementSize)
    {
        using var pool = new HostKvPool([new KvLayerShape(8, 128, 128), new KvLayerShape(1, 576, 512, ValueIsKeyPrefix: true)], 10, 16, storage);
        var expected = ((8L * 16 * (128 + 128)) + (16L * 576)) * elementSize;
        Assert.Equal(expected, pool.BytesPerBlock);
        Assert.Equal(expected * 10, pool.TotalBytes);
        Assert.Equal(10, pool.BlockCount);
        Assert.Equal(16, pool.BlockSize);
        Assert.Equal(storage, pool.Storage);
        Assert.Equal(2, pool.Layers.Count);
    }

    [Fact]
    public void ReadBlock_WriteBlock_CopyBlock_MoveWholeBlocks()
    {
        var shape = new KvLayerShape(2, 8, 4);
        using var pool = new HostKvPool([shape, shape], 4, 4, KvStorage.BFloat16);
        var random = new Random(3);
        for (var layer = 0; layer < 2; layer++)
        {
            var slots = Enumerable.Range(4, 4).ToArray();   // block 1
            pool.Write(layer, slots, AttentionReference.Random(random, 4 * 16), AttentionReference.Random(random, 4 * 8));
        }

        var original = new byte[pool.BytesPerBlock];
        pool.ReadBlock(1, original);
        Assert.Contains(original, b => b != 0);

        pool.CopyBlock(1, 3);
        var copied = new byte[pool.BytesPerBlock];
        pool.ReadBlock(3, copied);
        Assert.Equal(original, copied);

        pool.WriteBlock(0, original);
        pool.ReadBlock(0, copied);
        Assert.Equal(original, copied);

        var untouched = new byte[pool.BytesPerBlock];
        pool.ReadBlock(2, untouched);
        Assert.All(untouched, b => Assert.Equal(0, b));
    }

    [Fact]
    public void Write_BadArguments_Throw()
    {
        var shape = new KvLayerShape(2, 8, 4);
        using var pool = new HostKvPool([shape], 4, 4, KvStorage.Float32);
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Write(0, [16], new float[16], new float[8]));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Write(1, [0], new float[16], new float[8]));
        Assert.Throws<ArgumentException>(() => pool.Write(0, [0], new float[15], new float[8]));
        Assert.Throws<ArgumentException>(() => pool.Write(0, [0], new float[16], new float[7]));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.CopyBlock(0, 4));
        Assert.Throws<ArgumentException>(() => pool.ReadBlock(0, new byte[pool.BytesPerBlock - 1]));
        Assert.Throws<ArgumentException>(() => new HostKvPool([new KvLayerShape(1, 8, 16, ValueIsKeyPrefix: true)], 1, 4, KvStorage.Float32));
    }

    [Fact]
    public void Write_PrefixValue_NeedsNoValue()
    {
        using var pool = new HostKvPool([new KvLayerShape(1, 8, 4, ValueIsKeyPrefix: true)], 2, 4, KvStorage.Float16);
        pool.Write(0, [5], [1, 2, 3, 4, 5, 6, 7, 8], default);
        Assert.Equal(2L * 4 * 8, pool.BytesPerBlock);
    }

    [Fact]
    public void Dispose_ThenUse_Throws()
    {
        var pool = new HostKvPool([new KvLayerShape(1, 8, 8)], 2, 4, KvStorage.Float32);
        pool.Dispose();
        pool.Dispose();
        Assert.Throws<ObjectDisposedException>(() => pool.CopyBlock(0, 1));
    }
}
