// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>
/// The parts of ADR 0010's overlap that need no model: where a step is cut into two micro-batches, when
/// <see cref="AttentionOverlap.Auto"/> overlaps, and the worker's ordering and error handling.
/// </summary>
public sealed class MicroBatchOverlapTests
{
    [Fact]
    public void SplitRow_BalancesAttentionWork_NotRowCount()
    {
        // One long decode (past 1000) then three short ones (past 10): the long row alone is more than half the work.
        var batch = new ForwardBatch();
        batch.AddRow([1], 1000, new int[63], RowLogits.Last);
        batch.AddRow([1], 10, [1], RowLogits.Last);
        batch.AddRow([1], 10, [2], RowLogits.Last);
        batch.AddRow([1], 10, [3], RowLogits.Last);
        Assert.Equal(1, MicroBatches.SplitRow(batch));

        // Equal rows: half and half.
        batch.Clear();
        for (var r = 0; r < 6; r++)
        {
            batch.AddRow([1], 100, new int[7], RowLogits.Last);
        }

        Assert.Equal(3, MicroBatches.SplitRow(batch));

        // Long rows at the end: the cut moves right.
        batch.Clear();
        batch.AddRow([1], 10, [1], RowLogits.Last);
        batch.AddRow([1], 10, [2], RowLogits.Last);
        batch.AddRow([1], 10, [3], RowLogits.Last);
        batch.AddRow([1], 500, new int[32], RowLogits.Last);
        batch.AddRow([1], 500, new int[32], RowLogits.Last);
        Assert.Equal(4, MicroBatches.SplitRow(batch));

        // A prefill chunk of 64 new tokens weighs 64 x (past + 64).
        Assert.Equal(64L * (100 + 64), MicroBatches.Work(Single([.. new int[64]], 100), 0));
        Assert.Equal(0, MicroBatches.SplitRow(Single([1], 5)));
    }

    [Fact]
    public void SplitRow_KeepsThePreviousCut_WhileItStaysNearHalf()
    {
        // Rows of past 100, 110, 120, 130: the balanced cut is 2; a previous cut of 1 (first half 23%) is not kept, 3 (74%)
        // neither, but 2 stays as the contexts grow evenly.
        var batch = new ForwardBatch();
        foreach (var past in (int[])[100, 110, 120, 130])
        {
            batch.AddRow([1], past, new int[9], RowLogits.Last);
        }

        Assert.Equal(2, MicroBatches.SplitRow(batch, previous: 1));
        Assert.Equal(2, MicroBatches.SplitRow(batch, previous: 3));
        Assert.Equal(2, MicroBatches.SplitRow(batch, previous: 2));

        // Five equal rows: cuts 2 and 3 are equally far from half (40% and 60%); the first is chosen afresh, and a previous
        // cut of 3 is kept (within 12.5% of half), one of 4 (80%) or out of range is not.
        batch.Clear();
        for (var r = 0; r < 5; r++)
        {
            batch.AddRow([1], 100, new int[9], RowLogits.Last);
        }

        Assert.Equal(2, MicroBatches.SplitRow(batch));
        Assert.Equal(3, MicroBatches.SplitRow(batch, previous: 3));
        Assert.Equal(2, MicroBatches.SplitRow(batch, previous: 4));
        Assert.Equal(2, MicroBatches.SplitRow(batch, previous: 9));
    }

    [Fact]
    public void Split_KeepsRowsInOrder_AndEachHalfsLogitRows()
    {
        var batch = new ForwardBatch();
        batch.AddRow([1, 2, 3], 0, [7], RowLogits.All, sequenceId: 11);
        batch.AddRow([4], 5, [8], RowLogits.None, sequenceId: 12);
        batch.AddRow([5, 6], 9, [9, 10], RowLogits.Last, sequenceId: 13);
        var first = new ForwardBatch();
        var second = new ForwardBatch();
        MicroBatches.Split(batch, 2, first, second);
        Assert.Equal(2, first.RowCount);
        Assert.Equal(1, second.RowCount);
        Assert.Equal(3, first.LogitRowCount);
        Assert.Equal(1, second.LogitRowCount);
        Assert.Equal([4], first.Tokens(1).ToArray());
        Assert.Equal(5, first.PastLength(1));
        Assert.Equal([9, 10], second.BlockTable(0).ToArray());
        Assert.Equal(13, second.SequenceId(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => MicroBatches.Split(batch, 3, first, second));
        Assert.Throws<ArgumentOutOfRangeException>(() => MicroBatches.Split(batch, 0, first, second));
    }

    [Fact]
    public void Policy_AutoOverlapsOnlyOnceAttentionOutweighsTheDenseSegments()
    {
        var auto = new OverlapPolicy(AttentionOverlap.Auto);
        Assert.False(auto.ShouldOverlap(8));
        auto.Record(denseSeconds: 0.010, attentionSeconds: 0.002);
        Assert.False(auto.ShouldOverlap(8));
        for (var i = 0; i < 20; i++)
        {
            auto.Record(denseSeconds: 0.010, attentionSeconds: 0.030);
        }

        Assert.True(auto.ShouldOverlap(8));
        Assert.False(auto.ShouldOverlap(1));

        var on = new OverlapPolicy(AttentionOverlap.On);
        Assert.True(on.ShouldOverlap(2));
        Assert.False(on.ShouldOverlap(1));
        var off = new OverlapPolicy(AttentionOverlap.Off);
        off.Record(0.001, 1);
        Assert.False(off.ShouldOverlap(64));
    }

    [Fact]
    public void Worker_RunsItemsInOrderOffTheCallersThread_AndRethrowsOnWait()
    {
        var log = new List<(int Lane, int Call, int Thread)>();
        using var worker = new OverlapWorker((lane, call) =>
        {
            if (call == 99)
            {
                throw new InvalidOperationException("attention failed");
            }

            Thread.Sleep(5);
            lock (log)
            {
                log.Add((lane, call, Environment.CurrentManagedThreadId));
            }
        });
        for (var call = 0; call < 5; call++)
        {
            worker.Start(0, call);
            worker.Start(1, call);
            Assert.Throws<InvalidOperationException>(() => worker.Start(0, call));
            worker.Wait(0);
            worker.Wait(1);
        }

        Assert.Equal(10, log.Count);
        Assert.All(log, e => Assert.NotEqual(Environment.CurrentManagedThreadId, e.Thread));
        Assert.Equal([(0, 0), (1, 0), (0, 1), (1, 1)], log.Take(4).Select(e => (e.Lane, e.Call)));
        Assert.True(worker.TakeBusyTicks() > 0);

        worker.Start(1, 99);
        var error = Assert.Throws<InvalidOperationException>(() => worker.Wait(1));
        Assert.Equal("attention failed", error.Message);

        // After a failure the lane is free again, and Drain forgets a failure nobody waited for.
        worker.Start(1, 99);
        worker.Drain();
        worker.Start(1, 3);
        worker.Wait(1);
        Assert.Equal(11, log.Count);
    }

    private static ForwardBatch Single(int[] tokens, int past)
    {
        var batch = new ForwardBatch();
        batch.AddRow(tokens, past, new int[(past + tokens.Length + 15) / 16], RowLogits.Last);
        return batch;
    }
}
