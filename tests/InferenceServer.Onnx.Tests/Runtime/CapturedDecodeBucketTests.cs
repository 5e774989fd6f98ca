// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>The padded batch sizes CUDA graphs are captured for, and the memory held back for them (no GPU needed).</summary>
public sealed class CapturedDecodeBucketTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 4)]
    [InlineData(8, 8)]
    [InlineData(9, 16)]
    [InlineData(17, 24)]
    [InlineData(100, 104)]
    [InlineData(256, 256)]
    public void Bucket_IsAPowerOfTwoUpTo8_ThenTheNextMultipleOf8(int rows, int bucket) =>
        Assert.Equal(bucket, CapturedDecode.Bucket(rows));

    [Fact]
    public void Buckets_CoverEveryBatchUpToTheCap()
    {
        var buckets = CapturedDecode.Buckets(256);
        Assert.Equal([1, 2, 4, 8, 16, 24, 32, 40], buckets.Take(8));
        Assert.Equal(256, buckets[^1]);
        Assert.Equal(3 + 32, buckets.Count);
        for (var rows = 1; rows <= 256; rows++)
        {
            Assert.Contains(CapturedDecode.Bucket(rows), buckets);
        }

        Assert.Equal([1, 2, 4, 8, 16, 24], CapturedDecode.Buckets(20));
    }

    [Fact]
    public void ReserveBytes_GrowsWithTheCap_AndCoversTheLargestBucketsLogits()
    {
        // Llama-3.1-8B's shape: vocabulary 128256, 32 layers of 8 KV heads x 128, fp16, 128K context.
        var spec = new ModelSpec
        {
            VocabularySize = 128256,
            ContextLength = 131072,
            KvLayers = [.. Enumerable.Range(0, 32).Select(i => new LayerKvSpec(i, 8, 128, 8, 128))],
            ElementType = KvElementType.Float16,
        };
        var small = CapturedDecode.ReserveBytes(spec, 128, 64);
        var large = CapturedDecode.ReserveBytes(spec, 128, 256);
        Assert.True(large > small);
        Assert.True(large >= 256L * 128256 * (4 + 4 + 2), $"{large}");
        Assert.True(large < 2L << 30, $"{large}");
    }
}
