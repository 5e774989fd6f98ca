using InferenceServer.Onnx.Attention;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>
/// <see cref="IKvBlockTransfer"/>: on the dense runner a block copied out and into other blocks serves the same next token;
/// the split runner names its pools by device (its copies are exercised end to end by the functional host-tier tests).
/// </summary>
public sealed class KvBlockTransferTests
{
    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("deepseek-v3-mla")]
    public void DenseRunner_BlocksCopiedOutAndIn_GiveTheSameLogitsAsTheOriginals(string fixture)
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(FixturePaths.Fixture(fixture)));
        using var runner = new DenseKvRunner(model, 8, 16);
        var transfer = (IKvBlockTransfer)runner;
        var vocab = model.Spec.VocabularySize;
        Assert.Equal(model.Spec.KvBytesPerToken * 16, transfer.BlockBytes);
        Assert.Equal([new KvPoolRange("host", 0, 8)], transfer.Pools);

        // 20 prompt tokens into blocks 0 and 1, then the next token over [0, 1] and over copies in [5, 6].
        var prompt = Enumerable.Range(0, 20).Select(i => (i * 37 % 1000) + 3).ToArray();
        var batch = new ForwardBatch();
        batch.AddRow(prompt, 0, [0, 1], RowLogits.Last);
        runner.Forward(batch, new float[vocab]);

        var bytes = new byte[transfer.BlockBytes];
        var copy = new byte[transfer.BlockBytes];
        foreach (var (from, to) in new[] { (0, 5), (1, 6) })
        {
            transfer.CopyOut(from, bytes);
            Assert.Contains(bytes, b => b != 0);
            transfer.CopyIn(to, bytes);
            transfer.CopyOut(to, copy);
            Assert.Equal(bytes, copy);
        }

        var expected = new float[vocab];
        var actual = new float[vocab];
        batch.Clear();
        batch.AddRow([7], 20, [0, 1], RowLogits.Last);
        runner.Forward(batch, expected);
        batch.Clear();
        batch.AddRow([7], 20, [5, 6], RowLogits.Last);
        runner.Forward(batch, actual);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void DenseRunner_WrongSpanOrBlock_IsRefused()
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(FixturePaths.Fixture("llama-gqa")));
        using var runner = new DenseKvRunner(model, 4, 16);
        var transfer = (IKvBlockTransfer)runner;
        Assert.Throws<ArgumentException>(() => transfer.CopyOut(0, new byte[transfer.BlockBytes - 1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => transfer.CopyIn(4, new byte[transfer.BlockBytes]));
    }

    [Fact]
    public void SplitPools_AreNamedByDevice_WithAnIndexWhereADeviceHoldsSeveral()
    {
        var spec = new AttentionLayerSpec(0, 4, 2, 16, 16, 0.25f, HeadMasked: false);
        using var kernel = new CpuPagedAttention(1);
        using var one = new CpuAttentionBackend([spec], 0, 8, 16, KvStorage.Float32, kernel);
        using var two = new CpuAttentionBackend([spec], 8, 4, 16, KvStorage.Float32, kernel);
        Assert.Equal([new KvPoolRange("cpu", 0, 8)], HostPoolBlocks.Ranges([one]));
        Assert.Equal([new KvPoolRange("cpu:0", 0, 8), new KvPoolRange("cpu:1", 8, 4)], HostPoolBlocks.Ranges([one, two]));
    }
}
