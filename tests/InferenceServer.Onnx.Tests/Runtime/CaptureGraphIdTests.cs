// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>
/// Captured decode steps without a GPU: the graph id ranges of the fused runner (a later runner of a model, whose session
/// outlives runners, never gets an id of an earlier one's) and which steps a captured graph runs (fused, and the local
/// split's, ADR 0011).
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

    [Fact]
    public void FillPadded_BatchRowsThenPaddingRowsInTheScratchBlock()
    {
        var batch = new ForwardBatch();
        batch.AddRow([5], 3, [7], RowLogits.Last);
        batch.AddRow([6], 20, [1, 2], RowLogits.Last);
        batch.AddRow([9], 40, [3, 4, 8], RowLogits.Last);
        var width = CapturedDecode.TableWidth(batch);
        Assert.Equal(4, width);
        var cumulative = new int[5];
        var past = new int[4];
        var table = Enumerable.Repeat(-1, 16).ToArray();
        CapturedDecode.FillPadded(batch, 4, width, 99, cumulative, past, table);
        Assert.Equal([0, 1, 2, 3, 4], cumulative);
        Assert.Equal([3, 20, 40, 0], past);
        Assert.Equal([7, 0, 0, 0, 1, 2, 0, 0, 3, 4, 8, 0, 99, 0, 0, 0], table);
    }

    [Fact]
    public void TableWidth_WidestRowRoundedUpToAPowerOfTwo()
    {
        var batch = new ForwardBatch();
        batch.AddRow([5], 0, [0], RowLogits.Last);
        Assert.Equal(1, CapturedDecode.TableWidth(batch));
        batch.AddRow([5], 0, [.. Enumerable.Range(1, 5)], RowLogits.Last);
        Assert.Equal(8, CapturedDecode.TableWidth(batch));
    }
}
