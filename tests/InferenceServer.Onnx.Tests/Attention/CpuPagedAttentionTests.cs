using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Tests.Attention;

/// <summary><see cref="CpuPagedAttention"/> against the naive double-precision <see cref="AttentionReference"/>.</summary>
public sealed class CpuPagedAttentionTests
{

    /// <summary>(kvStart, kvCount, queryCount, firstQueryPosition) of the sequences every scenario attends.</summary>
    private static readonly (int KvStart, int KvCount, int QueryCount, int FirstQuery)[] Sequences =
    [
        (0, 37, 1, 36),     // decode
        (0, 50, 5, 45),     // a causal chunk of prefill
        (32, 20, 4, 48),    // KV starting past 0 (the rest lives elsewhere)
        (32, 2, 4, 30),     // two queries before this pool's first position: they see nothing here
        (0, 300, 1, 299),   // a long decode (cut into ranges across threads)
        (0, 700, 2, 698),   // longer still, two queries
        (0, 0, 1, 5),       // nothing here at all
        (0, 1, 1, 0),       // one position
        (32, 33, 3, 100),   // queries past the end of the KV: all see everything here
        (0, 33, 2, 31),     // two queries whose visible KV ends at and one past a block boundary: in that block one sees nothing, the other one row
    ];

    [Theory]
    [InlineData(KvStorage.Float32, 1, 1)]
    [InlineData(KvStorage.Float32, 2, 2)]
    [InlineData(KvStorage.Float32, 4, 3)]
    [InlineData(KvStorage.Float16, 1, 2)]
    [InlineData(KvStorage.Float16, 2, 1)]
    [InlineData(KvStorage.Float16, 4, 4)]
    [InlineData(KvStorage.BFloat16, 1, 3)]
    [InlineData(KvStorage.BFloat16, 2, 4)]
    [InlineData(KvStorage.BFloat16, 4, 1)]
    [InlineData(KvStorage.Float16, 7, 2)]
    [InlineData(KvStorage.BFloat16, 8, 1)]
    [InlineData(KvStorage.Float32, 8, 2)]
    public void Attend_GqaGroups_MatchReference(KvStorage storage, int group, int threads)
    {
        Check(storage, new KvLayerShape(2, 64, 64), 2 * group, threads, useMask: false);
    }

    [Theory]
    [InlineData(KvStorage.Float32)]
    [InlineData(KvStorage.Float16)]
    [InlineData(KvStorage.BFloat16)]
    public void Attend_MlaValueIsKeyPrefix_MatchesReference(KvStorage storage)
    {
        Check(storage, new KvLayerShape(1, 80, 64, ValueIsKeyPrefix: true), 8, threads: 2, useMask: false);
    }

    [Theory]
    [InlineData(KvStorage.Float32, 1)]
    [InlineData(KvStorage.BFloat16, 3)]
    public void Attend_HeadMask_SkipsMaskedHeads(KvStorage storage, int threads)
    {
        Check(storage, new KvLayerShape(2, 32, 48), 8, threads, useMask: true);
    }

    [Theory]
    [InlineData(KvStorage.Float16, 1)]
    [InlineData(KvStorage.BFloat16, 2)]
    public void Attend_HeadMask_SixteenBitDecodeInRegisters_SkipsMaskedHeads(KvStorage storage, int threads)
    {
        // Widths that take the in-register 16-bit path for keys and values (a multiple of 32), four query heads per KV head.
        Check(storage, new KvLayerShape(2, 64, 64), 8, threads, useMask: true);
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(4, true)]
    public void Attend_Float16PoolThatHeldAnInfinity_ConvertsExactly_MatchesReference(int group, bool useMask)
    {
        // Layer 0 gets a value past fp16's range (it rounds to infinity): the pool then reads every fp16 value with the
        // conversion that keeps infinities and NaNs, and layer 1's results must not change.
        Check(KvStorage.Float16, new KvLayerShape(2, 64, 64), 2 * group, threads: 2, useMask, nonFiniteInOtherLayer: true);
    }

    [Theory]
    [InlineData(KvStorage.Float16, 70000f)]
    [InlineData(KvStorage.Float16, float.PositiveInfinity)]
    [InlineData(KvStorage.BFloat16, float.PositiveInfinity)]
    [InlineData(KvStorage.Float32, float.PositiveInfinity)]
    public void Attend_InfiniteValue_ReachesTheOutput(KvStorage storage, float huge)
    {
        // One value past the storage's range in a position every query sees: as in exact arithmetic, the output's
        // dimension 0 is +infinity for every query head (a conversion that assumed finite values would give ~65536).
        var shape = new KvLayerShape(1, 64, 64);
        using var pool = new HostKvPool([shape], 4, 16, storage);
        var random = new Random(7);
        var slots = Enumerable.Range(0, 40).ToArray();
        var values = AttentionReference.Random(random, 40 * 64);
        values[3 * 64] = huge;
        pool.Write(0, slots, AttentionReference.Random(random, 40 * 64), values);
        var work = new AttentionWork();
        work.AddSequence([0, 1, 2], 0, 40, 0, 1, 39);
        var output = new float[4 * 64];
        var lse = new float[4];
        using var kernel = new CpuPagedAttention(1);
        kernel.Attend(pool, 0, work, 4, 0.125f, AttentionReference.Random(random, 4 * 64), output, lse);
        for (var h = 0; h < 4; h++)
        {
            Assert.True(float.IsPositiveInfinity(output[h * 64]), $"head {h}: {output[h * 64]}");
            Assert.True(float.IsFinite(output[(h * 64) + 1]) && float.IsFinite(lse[h]), $"head {h}");
        }
    }

    [Theory]
    [InlineData(KvStorage.Float32, 128)]
    [InlineData(KvStorage.Float16, 128)]
    [InlineData(KvStorage.BFloat16, 96)]
    [InlineData(KvStorage.Float32, 17)]
    public void Attend_OddAndWideHeads_MatchReference(KvStorage storage, int width)
    {
        Check(storage, new KvLayerShape(2, width, width), 8, threads: 2, useMask: false);
    }

    [Theory]
    [InlineData(KvStorage.Float16, 8)]
    [InlineData(KvStorage.BFloat16, 4)]
    [InlineData(KvStorage.Float32, 32)]
    public void Attend_OtherBlockSizes_MatchReference(KvStorage storage, int blockSize)
    {
        Check(storage, new KvLayerShape(2, 64, 64), 8, threads: 2, useMask: false, blockSize);
        Check(storage, new KvLayerShape(1, 40, 32, ValueIsKeyPrefix: true), 4, threads: 2, useMask: true, blockSize);
    }

    [Fact]
    public void Attend_SequenceSpanningTwoPools_MergesToOnePoolWithin1e5()
    {
        var shape = new KvLayerShape(2, 64, 64);
        const int BlockSize = 16;
        const int QueryHeads = 8;
        const int Split = 48;                   // pool A holds [0, 48), pool B [48, 130)
        const int KvCount = 130;
        const int FirstQuery = 40;              // queries 40..129: the first few see nothing in B
        const int Queries = KvCount - FirstQuery;
        var random = new Random(7);
        var key = AttentionReference.Random(random, KvCount * shape.KvHeads * shape.KeyWidth);
        var value = AttentionReference.Random(random, KvCount * shape.KvHeads * shape.ValueWidth);
        var q = AttentionReference.Random(random, Queries * QueryHeads * shape.KeyWidth);
        var scale = 1f / MathF.Sqrt(shape.KeyWidth);

        using var whole = new HostKvPool([shape], 12, BlockSize, KvStorage.Float32);
        using var first = new HostKvPool([shape], 5, BlockSize, KvStorage.Float32);
        using var second = new HostKvPool([shape], 7, BlockSize, KvStorage.Float32);
        int[] wholeTable = [3, 0, 11, 5, 1, 9, 2, 8, 4];
        int[] firstTable = [4, 1, 2];
        int[] secondTable = [6, 0, 3, 5, 1, 2];
        AttentionReference.Fill(whole, 0, wholeTable, key, value, 0, KvCount, random);
        AttentionReference.Fill(first, 0, firstTable, key, value, 0, Split, random);
        AttentionReference.Fill(second, 0, secondTable, key, value, Split, KvCount - Split, random);

        using var kernel = new CpuPagedAttention(2);
        var (expected, expectedLse) = Run(kernel, whole, shape, QueryHeads, scale, q, wholeTable, 0, KvCount, Queries, FirstQuery);
        var (merged, mergedLse) = Run(kernel, first, shape, QueryHeads, scale, q, firstTable, 0, Split, Queries, FirstQuery);
        var (part, partLse) = Run(kernel, second, shape, QueryHeads, scale, q, secondTable, Split, KvCount - Split, Queries, FirstQuery);
        Assert.Contains(float.NegativeInfinity, partLse);
        AttentionMerge.MergeInto(merged, mergedLse, part, partLse, QueryHeads, shape.ValueWidth);

        for (var i = 0; i < expectedLse.Length; i++)
        {
            Assert.True(Math.Abs(expectedLse[i] - mergedLse[i]) <= 1e-5, $"lse[{i}]: {mergedLse[i]} vs {expectedLse[i]}");
        }

        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - merged[i]) <= 1e-5, $"output[{i}]: {merged[i]} vs {expected[i]}");
        }
    }

    [Fact]
    public void Attend_BadArguments_Throw()
    {
        var shape = new KvLayerShape(2, 16, 16);
        using var pool = new HostKvPool([shape], 4, 16, KvStorage.Float32);
        using var kernel = new CpuPagedAttention(1);
        var work = new AttentionWork();
        work.AddSequence([0, 1], 0, 20, 0, 1, 19);
        var q = new float[4 * 16];
        var output = new float[4 * 16];
        var lse = new float[4];
        Assert.Throws<ArgumentException>(() => kernel.Attend(pool, 0, work, 3, 1f, q, output, lse));
        Assert.Throws<ArgumentOutOfRangeException>(() => kernel.Attend(pool, 1, work, 4, 1f, q, output, lse));
        Assert.Throws<ArgumentException>(() => kernel.Attend(pool, 0, work, 4, 1f, q.AsSpan(1), output, lse));
        Assert.Throws<ArgumentException>(() => kernel.Attend(pool, 0, work, 4, 1f, q, output, lse.AsSpan(1)));

        work.Clear();
        work.AddSequence([0, 9], 0, 20, 0, 1, 19);
        Assert.Throws<ArgumentException>(() => kernel.Attend(pool, 0, work, 4, 1f, q, output, lse));
        work.Clear();
        work.AddSequence([0], 0, 20, 0, 1, 19);
        Assert.Throws<ArgumentException>(() => kernel.Attend(pool, 0, work, 4, 1f, q, output, lse));
        work.Clear();
        work.AddSequence([0, 1], 8, 20, 0, 1, 19);
        Assert.Throws<ArgumentException>(() => kernel.Attend(pool, 0, work, 4, 1f, q, output, lse));
    }

    [Fact]
    public void Attend_SteadyState_AllocatesNothing()
    {
        var shape = new KvLayerShape(2, 64, 64);
        using var pool = new HostKvPool([shape], 64, 16, KvStorage.Float16);
        using var kernel = new CpuPagedAttention(3);
        var work = new AttentionWork();
        var table = Enumerable.Range(0, 63).ToArray();
        var q = new float[24 * 8 * 64];
        var output = new float[24 * 8 * 64];
        var lse = new float[24 * 8];
        void Step()
        {
            work.Clear();
            for (var s = 0; s < 8; s++)
            {
                // Two long sequences among short ones: the long ones are cut into ranges and merged.
                var kvCount = s < 2 ? 1000 : 100;
                work.AddSequence(table, 0, kvCount, s * 3, 3, kvCount - 3);
            }

            kernel.Attend(pool, 0, work, 8, 0.125f, q, output, lse);
        }

        for (var i = 0; i < 3; i++)
        {
            Step();
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        var workersBefore = kernel.WorkerAllocatedBytes;
        for (var i = 0; i < 20; i++)
        {
            Step();
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(0, kernel.WorkerAllocatedBytes - workersBefore);
        Assert.True(kernel.LastMergeGroupCount > 0, "the long sequences must take the cut-and-merge path");
    }

    private static (float[] Output, float[] Lse) Run(CpuPagedAttention kernel, HostKvPool pool, KvLayerShape shape, int queryHeads,
        float scale, float[] q, int[] table, int kvStart, int kvCount, int queries, int firstQuery)
    {
        var work = new AttentionWork();
        work.AddSequence(table, kvStart, kvCount, 0, queries, firstQuery);
        var output = new float[queries * queryHeads * shape.ValueWidth];
        var lse = new float[queries * queryHeads];
        kernel.Attend(pool, 0, work, queryHeads, scale, q, output, lse);
        return (output, lse);
    }

    private static void Check(KvStorage storage, KvLayerShape shape, int queryHeads, int threads, bool useMask, int blockSize = 16, bool nonFiniteInOtherLayer = false)
    {
        var random = new Random(HashCode.Combine(storage, shape, queryHeads, threads));
        // Layer 0 has another shape, so the attended layer 1 sits at an offset inside each block.
        var other = new KvLayerShape(1, 24, 8);
        var blocksNeeded = Sequences.Sum(s => (s.KvCount + blockSize - 1) / blockSize);
        using var pool = new HostKvPool([other, shape], blocksNeeded + 3, blockSize, storage);
        var freeBlocks = new Queue<int>(Enumerable.Range(0, pool.BlockCount).OrderBy(_ => random.Next()));
        var work = new AttentionWork();
        var keys = new float[Sequences.Length][];
        var values = new float[Sequences.Length][];
        var queryOffset = 0;
        for (var s = 0; s < Sequences.Length; s++)
        {
            var (kvStart, kvCount, queryCount, firstQuery) = Sequences[s];
            var positions = kvStart + kvCount;
            keys[s] = AttentionReference.Random(random, positions * shape.KvHeads * shape.KeyWidth);
            values[s] = AttentionReference.Random(random, positions * shape.KvHeads * shape.ValueWidth);
            var table = new int[(kvCount + blockSize - 1) / blockSize];
            for (var b = 0; b < table.Length; b++)
            {
                table[b] = freeBlocks.Dequeue();
            }

            AttentionReference.Fill(pool, 1, table, keys[s], values[s], kvStart, kvCount, random);
            // Layer 0 gets garbage in the same blocks: it must not leak into layer 1.
            var garbage = Enumerable.Range(0, table.Length * blockSize).Select(j => (table[j / blockSize] * blockSize) + (j % blockSize)).ToArray();
            var garbageKeys = AttentionReference.Random(random, garbage.Length * 24, 100f);
            if (nonFiniteInOtherLayer && s == 0)
            {
                garbageKeys[5] = 1e6f;
            }

            pool.Write(0, garbage, garbageKeys, AttentionReference.Random(random, garbage.Length * 8, 100f));
            work.AddSequence(table, kvStart, kvCount, queryOffset, queryCount, firstQuery);
            queryOffset += queryCount;
        }

        Assert.Equal(nonFiniteInOtherLayer, pool.MayHoldNonFiniteHalf);
        Assert.Equal(Sequences.Length, work.SequenceCount);
        Assert.Equal(queryOffset, work.QueryCount);
        var rows = work.QueryCount;
        var q = AttentionReference.Random(random, rows * queryHeads * shape.KeyWidth, 2f);
        var mask = useMask ? Enumerable.Range(0, rows * queryHeads).Select(_ => random.Next(3) == 0 ? 0f : 1f).ToArray() : [];
        var output = new float[rows * queryHeads * shape.ValueWidth];
        var lse = new float[rows * queryHeads];
        output.AsSpan().Fill(float.NaN);
        lse.AsSpan().Fill(float.NaN);
        var scale = 1f / MathF.Sqrt(shape.KeyWidth);
        using var kernel = new CpuPagedAttention(threads);
        kernel.Attend(pool, 1, work, queryHeads, scale, q, output, lse, mask);
        if (threads > 1 && blockSize <= 16)
        {
            Assert.True(kernel.LastMergeGroupCount > 0, "the long sequence must be cut into KV ranges and merged");
        }

        var expected = new double[queryHeads * shape.ValueWidth];
        var expectedLse = new double[queryHeads];
        var sawEmpty = false;
        queryOffset = 0;
        for (var s = 0; s < Sequences.Length; s++)
        {
            var (kvStart, kvCount, queryCount, firstQuery) = Sequences[s];
            for (var i = 0; i < queryCount; i++)
            {
                var row = queryOffset + i;
                AttentionReference.Attend(shape, queryHeads, scale, q.AsSpan(row * queryHeads * shape.KeyWidth, queryHeads * shape.KeyWidth),
                    keys[s], values[s], kvStart, kvCount, firstQuery + i, expected, expectedLse,
                    useMask ? mask.AsSpan(row * queryHeads, queryHeads) : default);
                for (var h = 0; h < queryHeads; h++)
                {
                    var actualLse = lse[(row * queryHeads) + h];
                    if (double.IsNegativeInfinity(expectedLse[h]))
                    {
                        sawEmpty = true;
                        Assert.Equal(float.NegativeInfinity, actualLse);
                    }
                    else
                    {
                        Assert.True(Math.Abs(actualLse - expectedLse[h]) <= 1e-4, $"seq {s} row {i} head {h}: lse {actualLse} vs {expectedLse[h]}");
                    }

                    for (var d = 0; d < shape.ValueWidth; d++)
                    {
                        var actual = output[(((row * queryHeads) + h) * shape.ValueWidth) + d];
                        var reference = expected[(h * shape.ValueWidth) + d];
                        Assert.True(Math.Abs(actual - reference) <= 1e-4, $"seq {s} row {i} head {h} dim {d}: {actual} vs {reference}");
                    }
                }
            }

            queryOffset += queryCount;
        }

        Assert.True(sawEmpty, "the scenario must include queries that see nothing");
    }
}
