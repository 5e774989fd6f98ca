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

    [Theory]
    [InlineData(70000f)]
    [InlineData(65520f)]
    [InlineData(float.NegativeInfinity)]
    [InlineData(float.NaN)]
    public void MayHoldNonFiniteHalf_SetByTheFirstValueFp16CannotHold(float bad)
    {
        var shape = new KvLayerShape(2, 8, 4);
        using var pool = new HostKvPool([shape], 4, 4, KvStorage.Float16);
        var keys = Enumerable.Range(0, 16).Select(i => 65504f - i).ToArray();   // fp16's largest finite values
        pool.Write(0, [0], keys, new float[8]);
        Assert.False(pool.MayHoldNonFiniteHalf);

        var values = new float[8];
        values[7] = bad;   // the scalar tail of the check, after a full vector
        pool.Write(0, [1], new float[16], values);
        Assert.True(pool.MayHoldNonFiniteHalf);

        using var bf16 = new HostKvPool([shape], 4, 4, KvStorage.BFloat16);
        bf16.Write(0, [1], new float[16], values);
        Assert.False(bf16.MayHoldNonFiniteHalf);
    }

    [Fact]
    public void MayHoldNonFiniteHalf_SetByARawBlockHoldingAnInfinity()
    {
        var shape = new KvLayerShape(2, 8, 4);
        using var pool = new HostKvPool([shape], 4, 4, KvStorage.Float16);
        var block = new byte[pool.BytesPerBlock];
        pool.WriteBlock(0, block);
        Assert.False(pool.MayHoldNonFiniteHalf);

        // fp16 +infinity (0x7C00) as the last element of the block.
        block[^2] = 0x00;
        block[^1] = 0x7C;
        pool.WriteBlock(1, block);
        Assert.True(pool.MayHoldNonFiniteHalf);
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
