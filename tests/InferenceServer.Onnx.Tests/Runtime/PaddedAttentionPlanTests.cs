// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>
/// <see cref="PaddedAttentionPlan"/>: how a step of the paged MLA graph is cut so that no call's padded scores
/// (rows x max_new x heads x keys x bytes) outgrow the budget. The GPU test <c>CutMlaSteps_GiveTheWholeStepsLogits</c>
/// checks that the cut calls give the whole step's logits.
/// </summary>
public sealed class PaddedAttentionPlanTests
{
    private const int BlockSize = 64;
    private const int Heads = 32;
    private const int Bytes = 2;

    [Fact]
    public void StepWithinTheBudget_StaysOneCall()
    {
        var batch = new ForwardBatch();
        batch.AddRow(Enumerable.Range(0, 128).ToArray(), 0, [0, 1], RowLogits.Last);
        batch.AddRow([5], 300, [2, 3, 4, 5, 6], RowLogits.Last);
        List<int> order = [7];
        List<PaddedAttentionPlan.Group> groups = [new(0, 1, 0)];

        // 2 rows x 128 places x 32 heads x 320 keys x 2 bytes = 5,242,880 bytes.
        Assert.False(PaddedAttentionPlan.Cut(batch, BlockSize, Heads, Bytes, 5_242_880, order, groups));
        Assert.Empty(order);
        Assert.Empty(groups);
        Assert.True(PaddedAttentionPlan.Cut(batch, BlockSize, Heads, Bytes, 5_242_879, order, groups));
    }

    [Fact]
    public void MixedStep_DecodesFirstAsOneCall_ThenThePromptsLongestFirstGroupedUnderTheBudget()
    {
        var batch = new ForwardBatch();
        batch.AddRow(Enumerable.Range(0, 100).ToArray(), 0, [0, 1], RowLogits.Last); // prompt, 128 keys
        batch.AddRow([7], 70, [2, 3], RowLogits.Last); // decode
        batch.AddRow(Enumerable.Range(0, 10).ToArray(), 0, [4], RowLogits.Last); // prompt, 64 keys
        batch.AddRow([8], 90, [5, 6], RowLogits.Last); // decode
        batch.AddRow(Enumerable.Range(0, 12).ToArray(), 0, [7], RowLogits.None); // prompt chunk without logits, 64 keys
        var order = new List<int>();
        var groups = new List<PaddedAttentionPlan.Group>();

        // Just short of two rows of 100 places against 128 keys: the 12-token prompt cannot join the 100-token one (it
        // would be padded to 100 places and score 128 keys), but it and the 10-token one fit together (longest first).
        var budget = PaddedAttentionPlan.ScoreBytes(2, 100, Heads, 128, Bytes) - 1;
        Assert.True(PaddedAttentionPlan.Cut(batch, BlockSize, Heads, Bytes, budget, order, groups));

        Assert.Equal([1, 3, 0, 4, 2], order);
        Assert.Equal([new(0, 2, 0), new(2, 1, 0), new(3, 2, 0)], groups);
        foreach (var group in groups)
        {
            var rows = order.GetRange(group.First, group.Count);
            var maxNew = rows.Max(r => batch.Tokens(r).Length);
            var keys = rows.Max(r => batch.BlockTable(r).Length) * BlockSize;
            Assert.True(PaddedAttentionPlan.ScoreBytes(group.Count, maxNew, Heads, keys, Bytes) <= budget);
        }
    }

    [Fact]
    public void PromptTooLongForTheBudgetAlone_RunsAloneInWholeBlockChunksThatFit()
    {
        // The dense MLA 1B case that failed on the H100: a 4,000-token prompt over 63 blocks of 64, 32 heads, fp16.
        var batch = new ForwardBatch();
        batch.AddRow([3], 10, [0], RowLogits.Last);
        batch.AddRow(Enumerable.Range(0, 4000).ToArray(), 0, Enumerable.Range(1, 63).ToArray(), RowLogits.Last);
        var order = new List<int>();
        var groups = new List<PaddedAttentionPlan.Group>();

        Assert.True(PaddedAttentionPlan.Cut(batch, BlockSize, Heads, Bytes, PaddedAttentionPlan.ScoreBudgetBytes, order, groups));

        Assert.Equal([0, 1], order);
        Assert.Equal(2, groups.Count);
        Assert.Equal(new PaddedAttentionPlan.Group(0, 1, 0), groups[0]);
        var chunk = groups[1].Chunk;
        Assert.Equal((1, 1), (groups[1].First, groups[1].Count));
        // 512 MiB / (32 heads x 4,032 keys x 2 bytes) = 2,080 tokens, cut back to whole blocks: 2,048.
        Assert.Equal(2048, chunk);
        Assert.True(PaddedAttentionPlan.ScoreBytes(1, chunk, Heads, 63 * BlockSize, Bytes) <= PaddedAttentionPlan.ScoreBudgetBytes);
    }

    [Fact]
    public void MixedStepWithinTheScoreBudget_IsCutWhenItsPaddingOutgrowsThePaddingBudget()
    {
        // The dense MLA 1B model at concurrency 256 (H100, 0.44x GQA): one 128-token prompt beside 255 decodes, every row
        // over 4 blocks of 64 keys. Whole: 256 x 128 places x 32 heads x 256 keys x 2 bytes = 512 MiB, within the score
        // budget, but 32,385 of the 32,768 places are padding: 506 MiB of wasted scores, past the 64 MiB padding budget.
        var batch = new ForwardBatch();
        batch.AddRow(Enumerable.Range(0, 128).ToArray(), 0, [0, 1, 2, 3], RowLogits.Last);
        for (var r = 1; r < 256; r++)
        {
            batch.AddRow([r], 200, [4 * r, (4 * r) + 1, (4 * r) + 2, (4 * r) + 3], RowLogits.Last);
        }

        var order = new List<int>();
        var groups = new List<PaddedAttentionPlan.Group>();
        Assert.Equal(PaddedAttentionPlan.ScoreBudgetBytes, PaddedAttentionPlan.ScoreBytes(256, 128, Heads, 256, Bytes));
        Assert.True(PaddedAttentionPlan.Cut(batch, BlockSize, Heads, Bytes, PaddedAttentionPlan.ScoreBudgetBytes, order, groups));
        Assert.Equal([.. Enumerable.Range(1, 255), 0], order);
        Assert.Equal([new(0, 255, 0), new(255, 1, 0)], groups);

        // The same padding allowed: one call.
        Assert.False(PaddedAttentionPlan.Cut(batch, BlockSize, Heads, Bytes, PaddedAttentionPlan.ScoreBudgetBytes, order, groups, paddingBudget: 530_595_840));
        Assert.True(PaddedAttentionPlan.Cut(batch, BlockSize, Heads, Bytes, PaddedAttentionPlan.ScoreBudgetBytes, order, groups, paddingBudget: 530_595_839));
    }

    [Fact]
    public void PromptsOfUnlikeLengths_GroupLongestFirst_UnderThePaddingBudget()
    {
        // Chunked prefill's usual step: a 2,048-token chunk beside prompts of 100-300 tokens, all over 2,048 keys. Whole:
        // 9 rows x 2,048 places x 32 heads x 2,048 keys x 2 bytes = 2.25 GiB, cut by the score budget anyway; in row order
        // the long chunk would take the short prompts with it, padding each to 2,048 places.
        var batch = new ForwardBatch();
        int[] lengths = [100, 2048, 300, 120, 290, 110, 280, 130, 295];
        foreach (var length in lengths)
        {
            batch.AddRow(Enumerable.Range(0, length).ToArray(), 0, Enumerable.Range(0, 32).ToArray(), RowLogits.Last);
        }

        var order = new List<int>();
        var groups = new List<PaddedAttentionPlan.Group>();
        Assert.True(PaddedAttentionPlan.Cut(batch, BlockSize, Heads, Bytes, PaddedAttentionPlan.ScoreBudgetBytes, order, groups));

        // Longest first, ties by row; a group closes when one more row would pad it past 64 MiB: the 2,048-token chunk
        // alone (a 300-token row beside it would pad 1,748 places, 218 MiB); 300/295/290/280/130/120 (385 places, 48 MiB;
        // with 110 it would be 72 MiB); then 110/100.
        Assert.Equal([1, 2, 8, 4, 6, 7, 3, 5, 0], order);
        Assert.Equal([new(0, 1, 0), new(1, 6, 0), new(7, 2, 0)], groups);
        foreach (var group in groups)
        {
            var rows = order.GetRange(group.First, group.Count);
            var maxNew = rows.Max(r => batch.Tokens(r).Length);
            var padding = ((long)group.Count * maxNew) - rows.Sum(r => batch.Tokens(r).Length);
            Assert.True(padding * Heads * 32 * BlockSize * Bytes <= PaddedAttentionPlan.PaddingBudgetBytes);
        }

        // Prompts of one length pad nothing: one call when the scores fit.
        var even = new ForwardBatch();
        for (var r = 0; r < 8; r++)
        {
            even.AddRow(Enumerable.Range(0, 128).ToArray(), 0, [2 * r, (2 * r) + 1], RowLogits.Last);
        }

        Assert.False(PaddedAttentionPlan.Cut(even, BlockSize, Heads, Bytes, PaddedAttentionPlan.ScoreBudgetBytes, order, groups));
    }

    [Theory]
    [InlineData(4032, 1L << 20, 4)] // under one block's worth: a few tokens
    [InlineData(4032, 1L << 30, 4160)] // 4,161 tokens fit: 65 whole blocks
    [InlineData(64, 1, 1)] // not even one token fits: still 1, never 0
    public void ChunkTokens_FitsTheBudget_InWholeBlocksWhenItCan(int keys, long budget, int expected)
    {
        var chunk = PaddedAttentionPlan.ChunkTokens(keys, Heads, Bytes, BlockSize, budget);
        Assert.Equal(expected, chunk);
        Assert.True(chunk == 1 || PaddedAttentionPlan.ScoreBytes(1, chunk, Heads, keys, Bytes) <= budget);
    }
}
