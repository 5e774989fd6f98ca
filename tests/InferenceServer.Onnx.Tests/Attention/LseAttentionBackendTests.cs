// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Attention;
using InferenceServer.Onnx.Runtime;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Tests.Attention;

/// <summary>
/// <see cref="LseAttentionBackend"/>, the merge-capable <c>cuda:N</c> attention (standard-ops graph with log-sum-exp), run
/// here on ONNX Runtime's CPU provider over host memory: its part of sequences that span it and a <c>cpu</c> backend (or a
/// second instance) merges by log-sum-exp to what one <see cref="CpuAttentionBackend"/> holding every block computes, to
/// 1e-5, over a prefill step and decode steps, in one chunk or cut into many; fp16 pools agree with the CPU kernel's fp16
/// storage; MoH heads the mask zeroes come out 0.
/// </summary>
public sealed class LseAttentionBackendTests
{
    private const int BlockSize = 4;
    private const int Width = 16;

    [Theory]
    [InlineData(4, 2, 1, false, false)]
    [InlineData(8, 2, 3, false, false)]
    [InlineData(4, 4, 2, true, false)]
    [InlineData(4, 2, 1, false, true)]
    [InlineData(8, 2, 2, true, true)]
    public void SpanningSequences_MergeToOneBackendsResult(int queryHeads, int kvHeads, int blocksPerRun, bool secondIsCpu, bool tinyChunks)
    {
        var spec = new AttentionLayerSpec(0, queryHeads, kvHeads, Width, Width, 0.25f, HeadMasked: false);
        using var kernel = new CpuPagedAttention(2);
        using var whole = new CpuAttentionBackend([spec], 0, 64, BlockSize, KvStorage.Float32, kernel);
        var budget = tinyChunks ? 3L * 4 * BlockSize * 700 : LseAttentionBackend.DefaultChunkBudgetBytes;
        using var low = new LseAttentionBackend([spec], -1, TensorElementType.Float, 0, 32, BlockSize, budget);
        using var highLse = secondIsCpu ? null : new LseAttentionBackend([spec], -1, TensorElementType.Float, 32, 32, BlockSize, budget);
        using var highCpu = secondIsCpu ? new CpuAttentionBackend([spec], 32, 32, BlockSize, KvStorage.Float32, kernel) : null;
        using var buffers = new Buffers(TensorElementType.Float);
        using var runOptions = new RunOptions();

        int[] lengths = [13, 5, 22];
        var tables = AttentionReference.AlternatingTables(lengths, BlockSize, blocksPerRun);
        var random = new Random(11);
        var batch = new ForwardBatch();
        var past = new int[lengths.Length];
        var sawChunks = false;
        for (var step = 0; step < 4; step++)
        {
            batch.Clear();
            for (var r = 0; r < lengths.Length; r++)
            {
                batch.AddRow(new int[step == 0 ? lengths[r] : 1], past[r], tables[r], wantLogits: true);
            }

            var tokens = batch.TokenCount;
            var q = AttentionReference.Random(random, tokens * spec.QueryWidth);
            var k = AttentionReference.Random(random, tokens * kvHeads * Width);
            var v = AttentionReference.Random(random, tokens * kvHeads * Width);
            var expected = new float[tokens * spec.OutputWidth];
            var expectedLse = new float[tokens * queryHeads];
            whole.Plan(batch);
            whole.Attend(0, spec, q, k, v, default, expected, expectedLse);

            low.Plan(batch);
            Assert.True(low.HasWork);
            sawChunks |= low.ChunkCount > 1;
            var (output, lse) = buffers.Run(low, spec, q, k, v, tokens, runOptions);
            var part = new float[expected.Length];
            var partLse = new float[expectedLse.Length];
            if (highCpu is not null)
            {
                highCpu.Plan(batch);
                highCpu.Attend(0, spec, q, k, v, default, part, partLse);
            }
            else
            {
                highLse!.Plan(batch);
                var (o, l) = buffers.Run(highLse, spec, q, k, v, tokens, runOptions);
                (part, partLse) = (o, l);
            }

            AttentionMerge.MergeInto(output, lse, part, partLse, queryHeads, Width);
            AssertClose(expected, output, 1e-5f, $"step {step} output");
            AssertClose(expectedLse, lse, 1e-5f, $"step {step} lse");
            for (var r = 0; r < lengths.Length; r++)
            {
                past[r] += step == 0 ? lengths[r] : 1;
            }
        }

        Assert.Equal(tinyChunks, sawChunks);
    }

    [Fact]
    public void Float16Pools_AgreeWithTheCpuKernelsFloat16Storage()
    {
        var spec = new AttentionLayerSpec(0, 8, 2, Width, Width, 0.25f, HeadMasked: false);
        using var kernel = new CpuPagedAttention(2);
        using var cpu = new CpuAttentionBackend([spec], 0, 16, BlockSize, KvStorage.Float16, kernel);
        using var lse16 = new LseAttentionBackend([spec], -1, TensorElementType.Float16, 0, 16, BlockSize);
        using var buffers = new Buffers(TensorElementType.Float16);
        using var runOptions = new RunOptions();
        var batch = new ForwardBatch();
        var random = new Random(5);
        var past = 0;
        for (var step = 0; step < 3; step++)
        {
            batch.Clear();
            var count = step == 0 ? 9 : 1;
            batch.AddRow(new int[count], past, [3, 7, 1], wantLogits: true);
            var q = Rounded(AttentionReference.Random(random, count * spec.QueryWidth));
            var k = Rounded(AttentionReference.Random(random, count * 2 * Width));
            var v = Rounded(AttentionReference.Random(random, count * 2 * Width));
            var expected = new float[count * spec.OutputWidth];
            var expectedLse = new float[count * 8];
            cpu.Plan(batch);
            cpu.Attend(0, spec, q, k, v, default, expected, expectedLse);
            lse16.Plan(batch);
            var (output, lse) = buffers.Run(lse16, spec, q, k, v, count, runOptions);

            // The graph computes in fp32 from the same fp16 values and rounds its output to fp16 once.
            AssertClose(expected, output, 2e-3f, $"step {step} output");
            AssertClose(expectedLse, lse, 1e-4f, $"step {step} lse");
            past += count;
        }
    }

    [Fact]
    public void HeadMask_ZeroesTheMaskedHeads()
    {
        var spec = new AttentionLayerSpec(0, 4, 2, 8, 8, 0.5f, HeadMasked: true);
        using var backend = new LseAttentionBackend([spec], -1, TensorElementType.Float, 0, 8, BlockSize);
        using var buffers = new Buffers(TensorElementType.Float);
        using var runOptions = new RunOptions();
        var batch = new ForwardBatch();
        batch.AddRow([1, 2], 0, [3], wantLogits: true);
        backend.Plan(batch);
        var random = new Random(3);
        float[] mask = [1, 0, 1, 0, 0, 1, 1, 0];
        var (output, _) = buffers.Run(backend, spec, AttentionReference.Random(random, 2 * 32), AttentionReference.Random(random, 2 * 16), AttentionReference.Random(random, 2 * 16), 2, runOptions, mask);
        for (var i = 0; i < mask.Length; i++)
        {
            Assert.Equal(mask[i] == 0, output.AsSpan(i * 8, 8).IndexOfAnyExcept(0f) < 0);
        }
    }

    [Fact]
    public void Backend_HoldingNoneOfTheStep_HasNoWork()
    {
        var spec = new AttentionLayerSpec(0, 2, 1, 8, 8, 0.5f, HeadMasked: false);
        using var backend = new LseAttentionBackend([spec], -1, TensorElementType.Float, 16, 16, BlockSize);
        var batch = new ForwardBatch();
        batch.AddRow([1, 2, 3], 0, [0], wantLogits: true);
        backend.Plan(batch);
        Assert.False(backend.HasWork);
    }

    [Fact]
    public void LatentLayer_ValueIsTheKeysPrefix_MergesToOneCpuBackend()
    {
        // MLA: one shared key [latent, rope] per token, the latent (its first 12 entries) the value; no value pool.
        var spec = new AttentionLayerSpec(0, 4, 1, 20, 12, 0.3f, HeadMasked: false, ValueIsKeyPrefix: true);
        using var kernel = new CpuPagedAttention(2);
        using var whole = new CpuAttentionBackend([spec], 0, 16, BlockSize, KvStorage.Float32, kernel);
        using var low = new LseAttentionBackend([spec], -1, TensorElementType.Float, 0, 8, BlockSize);
        using var high = new CpuAttentionBackend([spec], 8, 8, BlockSize, KvStorage.Float32, kernel);
        Assert.Equal(8L * BlockSize * 20 * sizeof(float), low.KvBytes);
        using var buffers = new Buffers(TensorElementType.Float);
        using var runOptions = new RunOptions();
        var batch = new ForwardBatch();
        var random = new Random(9);
        var past = 0;
        int[] table = [0, 8, 1, 9, 2];
        for (var step = 0; step < 3; step++)
        {
            batch.Clear();
            var count = step == 0 ? 14 : 1;
            batch.AddRow(new int[count], past, table, wantLogits: true);
            var q = AttentionReference.Random(random, count * spec.QueryWidth);
            var k = AttentionReference.Random(random, count * 20);
            var v = new float[count * 12];
            for (var t = 0; t < count; t++)
            {
                k.AsSpan(t * 20, 12).CopyTo(v.AsSpan(t * 12));
            }

            var expected = new float[count * spec.OutputWidth];
            var expectedLse = new float[count * 4];
            whole.Plan(batch);
            whole.Attend(0, spec, q, k, v, default, expected, expectedLse);
            low.Plan(batch);
            high.Plan(batch);
            var (output, lse) = buffers.Run(low, spec, q, k, v, count, runOptions);
            var part = new float[expected.Length];
            var partLse = new float[expectedLse.Length];
            high.Attend(0, spec, q, k, v, default, part, partLse);
            AttentionMerge.MergeInto(output, lse, part, partLse, 4, 12);
            AssertClose(expected, output, 1e-5f, $"step {step} output");
            AssertClose(expectedLse, lse, 1e-5f, $"step {step} lse");
            past += count;
        }
    }

    private static float[] Rounded(float[] values)
    {
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)(Half)values[i];
        }

        return values;
    }

    private static void AssertClose(float[] expected, float[] actual, float tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"{what} {i}: {actual[i]} vs {expected[i]}");
        }
    }

    /// <summary>Host-memory step buffers (device -1) in the backend's element type, filled from and read back as floats.</summary>
    private sealed class Buffers(TensorElementType type) : IDisposable
    {
        private readonly DeviceTensorBuffer<float> _qF = new(-1, OrtMemoryInfo.DefaultInstance, TensorElementType.Float, 16);
        private readonly DeviceTensorBuffer<float> _kF = new(-1, OrtMemoryInfo.DefaultInstance, TensorElementType.Float, 16);
        private readonly DeviceTensorBuffer<float> _vF = new(-1, OrtMemoryInfo.DefaultInstance, TensorElementType.Float, 16);
        private readonly DeviceTensorBuffer<float> _oF = new(-1, OrtMemoryInfo.DefaultInstance, TensorElementType.Float, 16);
        private readonly DeviceTensorBuffer<Half> _qH = new(-1, OrtMemoryInfo.DefaultInstance, TensorElementType.Float16, 16);
        private readonly DeviceTensorBuffer<Half> _kH = new(-1, OrtMemoryInfo.DefaultInstance, TensorElementType.Float16, 16);
        private readonly DeviceTensorBuffer<Half> _vH = new(-1, OrtMemoryInfo.DefaultInstance, TensorElementType.Float16, 16);
        private readonly DeviceTensorBuffer<Half> _oH = new(-1, OrtMemoryInfo.DefaultInstance, TensorElementType.Float16, 16);
        private readonly DeviceTensorBuffer<float> _lse = new(-1, OrtMemoryInfo.DefaultInstance, TensorElementType.Float, 16);
        private readonly DeviceTensorBuffer<float> _mask = new(-1, OrtMemoryInfo.DefaultInstance, TensorElementType.Float, 16);

        public (float[] Output, float[] Lse) Run(LseAttentionBackend backend, AttentionLayerSpec spec, float[] q, float[] k, float[] v, int tokens, RunOptions runOptions, float[]? mask = null)
        {
            mask?.CopyTo(_mask.Reserve(mask.Length));
            _lse.Reserve(tokens * spec.QueryHeads);
            var output = new float[tokens * spec.OutputWidth];
            if (type == TensorElementType.Float)
            {
                q.CopyTo(_qF.Reserve(q.Length));
                k.CopyTo(_kF.Reserve(k.Length));
                v.CopyTo(_vF.Reserve(v.Length));
                _oF.Reserve(output.Length);
                backend.Attend(0, _qF, _kF, _vF, mask is null ? null : _mask, _oF, _lse, tokens, runOptions);
                _oF.Download(output.Length).CopyTo(output);
            }
            else
            {
                Narrow(q, _qH.Reserve(q.Length));
                Narrow(k, _kH.Reserve(k.Length));
                Narrow(v, _vH.Reserve(v.Length));
                _oH.Reserve(output.Length);
                backend.Attend(0, _qH, _kH, _vH, mask is null ? null : _mask, _oH, _lse, tokens, runOptions);
                var halves = _oH.Download(output.Length);
                for (var i = 0; i < output.Length; i++)
                {
                    output[i] = (float)halves[i];
                }
            }

            return (output, _lse.Download(tokens * spec.QueryHeads).ToArray());
        }

        public void Dispose()
        {
            foreach (var buffer in (IDisposable[])[_qF, _kF, _vF, _oF, _qH, _kH, _vH, _oH, _lse, _mask])
            {
                buffer.Dispose();
            }
        }

        private static void Narrow(float[] source, Span<Half> destination)
        {
            for (var i = 0; i < source.Length; i++)
            {
                destination[i] = (Half)source[i];
            }
        }
    }
}
