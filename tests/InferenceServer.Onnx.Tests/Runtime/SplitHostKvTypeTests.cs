// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>
/// <c>--kv-cache-dtype</c> on a CPU split (<see cref="OnnxSessionOptions.HostKvElementType"/>): the model's spec says
/// the type and half the bytes per token, the host pools really store it (half the bytes), and a prompt and a decode
/// step give the fp32 pools' logits within 16-bit rounding and the same argmax.
/// </summary>
public sealed class SplitHostKvTypeTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("split-kv-type-").FullName;

    public SplitHostKvTypeTests() =>
        ModelBuilder.Build(new BuildOptions { CheckpointDirectory = FixturePaths.Fixture("llama-gqa"), OutputDirectory = _folder, Split = true });

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData(KvElementType.BFloat16)]
    [InlineData(KvElementType.Float16)]
    public void SixteenBitHostPools_HalveTheKv_AndKeepTheLogits(KvElementType type)
    {
        using var wide = Open(null);
        using var narrow = Open(type);
        Assert.Equal(KvElementType.Float32, wide.Spec.ElementType);
        Assert.Equal(type, narrow.Spec.ElementType);
        Assert.Equal(wide.Spec.KvBytesPerToken, 2 * narrow.Spec.KvBytesPerToken);

        const int Blocks = 8;
        const int BlockSize = 16;
        using var wideRunner = Assert.IsType<SplitRunner>(wide.CreateRunner(Blocks, BlockSize));
        using var narrowRunner = Assert.IsType<SplitRunner>(narrow.CreateRunner(Blocks, BlockSize));
        Assert.Equal(Blocks * BlockSize * wide.Spec.KvBytesPerToken, wideRunner.Backends.Sum(b => b.KvBytes));
        Assert.Equal(Blocks * BlockSize * narrow.Spec.KvBytesPerToken, narrowRunner.Backends.Sum(b => b.KvBytes));

        // A 20-token prompt, then one decode step, through both.
        int[] table = [0, 1];
        var prompt = Enumerable.Range(0, 20).Select(i => 5 + (i * 7 % 90)).ToArray();
        var vocab = wide.Spec.VocabularySize;
        var (wideLogits, narrowLogits) = (new float[vocab], new float[vocab]);
        foreach (var (tokens, past) in ((int[], int)[])[(prompt, 0), ([42], prompt.Length)])
        {
            var batch = new ForwardBatch();
            batch.AddRow(tokens, past, table, RowLogits.Last);
            wideRunner.Forward(batch, wideLogits);
            narrowRunner.Forward(batch, narrowLogits);
            var largest = wideLogits.Zip(narrowLogits, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(largest < 0.05, $"{type}: logits differ by {largest}");
            Assert.Equal(Array.IndexOf(wideLogits, wideLogits.Max()), Array.IndexOf(narrowLogits, narrowLogits.Max()));
        }
    }

    private SplitDecoderModel Open(KvElementType? type) => Assert.IsType<SplitDecoderModel>(DecoderModels.Open(
        ModelPackage.Load(_folder), new OnnxSessionOptions { Device = "cpu", AttentionDevices = ["cpu"], HostKvElementType = type }));
}
