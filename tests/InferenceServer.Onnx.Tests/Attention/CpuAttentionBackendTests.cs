// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Attention;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Attention;

/// <summary>
/// <see cref="CpuAttentionBackend"/>: global block ids mapped to its pool, new k/v rows appended where their slots are, and
/// the parts of sequences spread over two backends (blocks alternating, so several runs per backend) merged by
/// log-sum-exp to what one backend holding every block computes, to 1e-5, step after step.
/// </summary>
public sealed class CpuAttentionBackendTests
{
    private const int BlockSize = 4;

    [Theory]
    [InlineData(4, 2, 1)]
    [InlineData(4, 4, 2)]
    [InlineData(8, 2, 3)]
    public void TwoBackends_SequencesSpanningBoth_MergeToOneBackendsResult(int queryHeads, int kvHeads, int blocksPerRun)
    {
        var spec = new AttentionLayerSpec(0, queryHeads, kvHeads, 16, 16, 0.25f, HeadMasked: false);
        using var kernel = new CpuPagedAttention(2);
        using var whole = new CpuAttentionBackend([spec], 0, 64, BlockSize, KvStorage.Float32, kernel);
        using var low = new CpuAttentionBackend([spec], 0, 32, BlockSize, KvStorage.Float32, kernel);
        using var high = new CpuAttentionBackend([spec], 32, 32, BlockSize, KvStorage.Float32, kernel);

        // Row r's blocks alternate between [0, 32) and [32, 64) every blocksPerRun blocks.
        int[] lengths = [13, 5, 22];
        var tables = AttentionReference.AlternatingTables(lengths, BlockSize, blocksPerRun);

        var random = new Random(7);
        var batch = new ForwardBatch();
        var past = new int[lengths.Length];
        for (var step = 0; step < 4; step++)
        {
            // Step 0 prefills each row whole; later steps decode one token per row.
            batch.Clear();
            for (var r = 0; r < lengths.Length; r++)
            {
                var count = step == 0 ? lengths[r] : 1;
                batch.AddRow(new int[count], past[r], tables[r], wantLogits: true);
            }

            var tokens = batch.TokenCount;
            var q = AttentionReference.Random(random, tokens * spec.QueryWidth);
            var k = AttentionReference.Random(random, tokens * kvHeads * 16);
            var v = AttentionReference.Random(random, tokens * kvHeads * 16);
            var expected = new float[tokens * spec.OutputWidth];
            var expectedLse = new float[tokens * queryHeads];
            whole.Plan(batch);
            whole.Attend(0, spec, q, k, v, default, expected, expectedLse);

            var output = new float[expected.Length];
            var lse = new float[expectedLse.Length];
            var part = new float[expected.Length];
            var partLse = new float[expectedLse.Length];
            low.Plan(batch);
            high.Plan(batch);
            Assert.True(low.HasWork && high.HasWork);
            low.Attend(0, spec, q, k, v, default, output, lse);
            high.Attend(0, spec, q, k, v, default, part, partLse);
            AttentionMerge.MergeInto(output, lse, part, partLse, queryHeads, 16);
            for (var i = 0; i < output.Length; i++)
            {
                Assert.True(Math.Abs(expected[i] - output[i]) < 1e-5, $"step {step} output {i}: {output[i]} vs {expected[i]}");
            }

            for (var i = 0; i < lse.Length; i++)
            {
                Assert.True(Math.Abs(expectedLse[i] - lse[i]) < 1e-5, $"step {step} lse {i}: {lse[i]} vs {expectedLse[i]}");
            }

            for (var r = 0; r < lengths.Length; r++)
            {
                past[r] += step == 0 ? lengths[r] : 1;
            }
        }
    }

    [Fact]
    public void Backend_HoldingNoneOfTheStep_HasNoWork_AndAnswersZeroAndMinusInfinity()
    {
        var spec = new AttentionLayerSpec(0, 2, 1, 8, 8, 0.5f, HeadMasked: false);
        using var kernel = new CpuPagedAttention(1);
        using var backend = new CpuAttentionBackend([spec], 16, 16, BlockSize, KvStorage.Float32, kernel);
        var batch = new ForwardBatch();
        batch.AddRow([1, 2, 3], 0, [0], wantLogits: true);
        backend.Plan(batch);
        Assert.False(backend.HasWork);
        var output = new float[3 * 2 * 8];
        output.AsSpan().Fill(5f);
        var lse = new float[3 * 2];
        backend.Attend(0, spec, new float[3 * 16], new float[3 * 8], new float[3 * 8], default, output, lse);
        Assert.All(output, o => Assert.Equal(0f, o));
        Assert.All(lse, l => Assert.Equal(float.NegativeInfinity, l));
    }

    [Fact]
    public void HeadMask_ZeroedHeads_OutputZeroAndMinusInfinity()
    {
        var spec = new AttentionLayerSpec(0, 4, 2, 8, 8, 0.5f, HeadMasked: true);
        using var kernel = new CpuPagedAttention(1);
        using var backend = new CpuAttentionBackend([spec], 0, 8, BlockSize, KvStorage.Float32, kernel);
        var batch = new ForwardBatch();
        batch.AddRow([1, 2], 0, [3], wantLogits: true);
        backend.Plan(batch);
        var random = new Random(3);
        float[] mask = [1, 0, 1, 0, 0, 1, 1, 0];
        var output = new float[2 * 4 * 8];
        var lse = new float[2 * 4];
        backend.Attend(0, spec, AttentionReference.Random(random, 2 * 32), AttentionReference.Random(random, 2 * 16), AttentionReference.Random(random, 2 * 16), mask, output, lse);
        for (var i = 0; i < mask.Length; i++)
        {
            Assert.Equal(mask[i] == 0, float.IsNegativeInfinity(lse[i]));
            Assert.Equal(mask[i] == 0, output.AsSpan(i * 8, 8).IndexOfAnyExcept(0f) < 0);
        }
    }
    [Fact]
    public void AppendOnlyPromptRows_StoresTheirKv_LeavesTheirOutputAlone_AndAttendsTheOthersAsUsual()
    {
        // --prefill-attention compute: a row at position 0 is attended on the compute device; here it is only stored.
        var spec = new AttentionLayerSpec(0, 4, 2, 8, 8, 0.5f, HeadMasked: false);
        using var kernel = new CpuPagedAttention(1);
        using var usual = new CpuAttentionBackend([spec], 0, 8, BlockSize, KvStorage.Float32, kernel);
        using var appendOnly = new CpuAttentionBackend([spec], 0, 8, BlockSize, KvStorage.Float32, kernel) { PromptRowMinTokens = 2 };
        // A threshold above the 3-token prompt: attended here as usual (the prior 2-token row too).
        using var above = new CpuAttentionBackend([spec], 0, 8, BlockSize, KvStorage.Float32, kernel) { PromptRowMinTokens = 4 };
        var random = new Random(5);
        var prior = new ForwardBatch();
        prior.AddRow([1, 2], 0, [4], wantLogits: true);
        var priorK = AttentionReference.Random(random, 2 * 16);
        var priorV = AttentionReference.Random(random, 2 * 16);
        var batch = new ForwardBatch();
        batch.AddRow([1, 2, 3], 0, [0], wantLogits: true);
        batch.AddRow([4], 2, [4], wantLogits: true);
        var q = AttentionReference.Random(random, 4 * 32);
        var k = AttentionReference.Random(random, 4 * 16);
        var v = AttentionReference.Random(random, 4 * 16);
        var results = new List<(float[] Output, float[] Lse)>();
        foreach (var backend in (CpuAttentionBackend[])[usual, appendOnly, above])
        {
            // The second row's first two positions came in an earlier step (a fresh row then: stored only, for appendOnly).
            // Rows a backend leaves alone keep this.
            const float Untouched = 7f;
            backend.Plan(prior);
            var priorOutput = Enumerable.Repeat(Untouched, 2 * 32).ToArray();
            var priorLse = Enumerable.Repeat(Untouched, 2 * 4).ToArray();
            backend.Attend(0, spec, AttentionReference.Random(new Random(1), 2 * 32), priorK, priorV, default, priorOutput, priorLse);
            // The prior step alone is a prompt: attended here by the usual backend, left alone (a step of no attention) by appendOnly.
            Assert.Equal(ReferenceEquals(backend, appendOnly), priorOutput.All(o => o == Untouched) && priorLse.All(l => l == Untouched));
            backend.Plan(batch);
            Assert.True(backend.HasWork);
            var output = Enumerable.Repeat(Untouched, 4 * 32).ToArray();
            var lse = Enumerable.Repeat(Untouched, 4 * 4).ToArray();
            backend.Attend(0, spec, q, k, v, default, output, lse);
            results.Add((output, lse));
        }

        // The fresh row's output and lse are the compute device's to write: the append-only backend leaves them alone.
        Assert.All(results[1].Output.AsSpan(0, 3 * 32).ToArray(), o => Assert.Equal(7f, o));
        Assert.All(results[1].Lse.AsSpan(0, 3 * 4).ToArray(), l => Assert.Equal(7f, l));
        Assert.True(results[0].Output.AsSpan(0, 3 * 32).IndexOfAnyExcept(0f) >= 0, "the usual backend attends the fresh row");
        Assert.Equal(results[0].Output.AsSpan(3 * 32).ToArray(), results[1].Output.AsSpan(3 * 32).ToArray());
        Assert.Equal(results[0].Lse.AsSpan(3 * 4).ToArray(), results[1].Lse.AsSpan(3 * 4).ToArray());
        Assert.Equal(results[0].Output, results[2].Output);
        Assert.Equal(results[0].Lse, results[2].Lse);
        foreach (var block in (int[])[0, 4])
        {
            var expected = new byte[usual.Pool.BytesPerBlock];
            var actual = new byte[appendOnly.Pool.BytesPerBlock];
            usual.Pool.ReadBlock(block, expected);
            appendOnly.Pool.ReadBlock(block, actual);
            Assert.Equal(expected, actual);
        }
    }
}
