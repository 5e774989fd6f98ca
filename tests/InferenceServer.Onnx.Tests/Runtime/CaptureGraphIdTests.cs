// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>
/// The CUDA graph ids of captured steps (ADR 0011; no GPU needed): every captured run of a runner has its own id, and a
/// later runner of the same model (whose sessions outlive runners) never gets an id of an earlier one's.
/// </summary>
public sealed class CaptureGraphIdTests
{
    [Fact]
    public void Claim_HandsOutDisjointRanges_FromZero()
    {
        var ranges = 0;
        Assert.Equal(0, CaptureGraphIds.Claim(ref ranges));
        Assert.Equal(CaptureGraphIds.RangeSize, CaptureGraphIds.Claim(ref ranges));
        Assert.Equal(2 * CaptureGraphIds.RangeSize, CaptureGraphIds.Claim(ref ranges));
        Assert.Equal(3, ranges);
    }

    [Fact]
    public void Claim_RangesUsedUp_Throws()
    {
        var ranges = (int.MaxValue / CaptureGraphIds.RangeSize) - 1;
        Assert.Throws<InvalidOperationException>(() => CaptureGraphIds.Claim(ref ranges));
    }

    [Fact]
    public void Segment_EveryBucketItsOwnId_WithinARange()
    {
        var buckets = CapturedDecode.Buckets(256);
        var ids = buckets.Select(b => CaptureGraphIds.Segment(b, 256)).ToArray();
        Assert.Equal(ids.Length, ids.Distinct().Count());
        Assert.All(ids, id => Assert.InRange(id, 1, CaptureGraphIds.RangeSize - 1));
        Assert.Equal(1, CaptureGraphIds.Segment(1, 256));
        Assert.Equal(4, CaptureGraphIds.Segment(8, 256));
        Assert.Throws<ArgumentOutOfRangeException>(() => CaptureGraphIds.Segment(5, 256));
        Assert.Throws<ArgumentOutOfRangeException>(() => CaptureGraphIds.Segment(264, 256));
    }

    [Fact]
    public void Attention_EveryShapeAndLayerItsOwnId_WithinARange()
    {
        // 35 buckets x 8 table widths of an 80-layer model.
        const int Layers = 80;
        var ids = new HashSet<int>();
        for (var shape = 0; shape < 35 * 8; shape++)
        {
            for (var layer = 0; layer < Layers; layer++)
            {
                var id = CaptureGraphIds.Attention(shape, layer, Layers);
                Assert.InRange(id, 1, CaptureGraphIds.RangeSize - 1);
                Assert.True(ids.Add(id), $"shape {shape} layer {layer}: id {id} given twice");
            }
        }

        Assert.Throws<InvalidOperationException>(() => CaptureGraphIds.Attention(CaptureGraphIds.RangeSize, 0, 2));
    }

    [Fact]
    public void Decodes_OneTokenRowsWithLogits_UpToTheCapAndWidth()
    {
        var batch = new ForwardBatch();
        batch.AddRow([5], 3, [0], RowLogits.Last);
        batch.AddRow([6], 9, [1, 2], RowLogits.Last);
        Assert.True(CapturedDecode.Decodes(batch, maxBatch: 2, maxWidth: 2));
        Assert.False(CapturedDecode.Decodes(batch, maxBatch: 1, maxWidth: 2));
        Assert.False(CapturedDecode.Decodes(batch, maxBatch: 2, maxWidth: 1));

        batch.AddRow([7, 8], 0, [3], RowLogits.Last);
        Assert.False(CapturedDecode.Decodes(batch, maxBatch: 4, maxWidth: 2));

        batch.Clear();
        batch.AddRow([5], 3, [0], RowLogits.None);
        Assert.False(CapturedDecode.Decodes(batch, maxBatch: 4, maxWidth: 2));
        batch.Clear();
        Assert.False(CapturedDecode.Decodes(batch, maxBatch: 4, maxWidth: 2));
    }
}
