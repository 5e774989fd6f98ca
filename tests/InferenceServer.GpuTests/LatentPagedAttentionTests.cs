// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using InferenceServer.Onnx.Attention;
using InferenceServer.Onnx.Runtime;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.GpuTests;

/// <summary>
/// ONNX Runtime 1.31's PagedAttention in its LATENT layout (<see cref="PagedAttentionGraph.CreateLatent"/>): absorbed
/// multi-head latent attention that reads the latent pool in place, the kernel issue 18's MLA decode step lacks (the paged
/// MLA graph gathers each row's latents instead; bench/results/gpu-2026-12-07-h100-run9.md). Run through the split's
/// <see cref="CudaAttentionBackend"/> against the CPU kernel on the same fp16-rounded q and keys, over a prefill step and
/// decode steps; then timed at 256 decode rows against the GQA 1B layer's PagedAttention in the same harness, printed
/// for the decision whether the paged MLA graph should call it. Written 2026-12-07 without a GPU.
/// </summary>
public sealed class LatentPagedAttentionTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(4, 32, 8, 64)]     // the deepseek-v3-mla fixture's attention
    [InlineData(32, 256, 64, 64)]  // the dense MLA 1B of run-dense1b-vs-gqa.sh
    [InlineData(16, 512, 64, 64)]  // DeepSeek-V2-Lite
    [InlineData(16, 512, 64, 256)] // the same at the block size the GQA kernel takes
    public void LatentLayout_MatchesTheCpuKernel_AndIsTimedAgainstGqa(int heads, int rank, int rope, int blockSize)
    {
        if (GpuFixtures.CudaUnavailableReason is { } reason)
        {
            Assert.Skip(reason);
        }

        var spec = new AttentionLayerSpec(0, heads, 1, rank + rope, rank, 1f / MathF.Sqrt(rank + rope), HeadMasked: false, ValueIsKeyPrefix: true);
        const int Blocks = 40;
        using var cuda = new CudaAttentionBackend([spec], 0, TensorElementType.Float16, Blocks, blockSize);
        using var kernel = new CpuPagedAttention(2);
        using var cpu = new CpuAttentionBackend([spec], 0, Blocks, blockSize, KvStorage.Float16, kernel);
        using var buffers = new Buffers();
        using var runOptions = new RunOptions();

        // Three rows, blocks scattered; a prefill step, then decode steps.
        int[] lengths = [blockSize + 5, 3, (2 * blockSize) + 1];
        var tables = lengths.Select((_, r) => Enumerable.Range(0, 4).Select(b => (b * lengths.Length) + r).ToArray()).ToArray();
        var random = new Random(5);
        var batch = new ForwardBatch();
        var past = new int[lengths.Length];
        var worst = 0f;
        for (var step = 0; step < 4; step++)
        {
            batch.Clear();
            for (var r = 0; r < lengths.Length; r++)
            {
                batch.AddRow(new int[step == 0 ? lengths[r] : 1], past[r], tables[r], wantLogits: true);
            }

            var tokens = batch.TokenCount;
            var q = Fp16Rounded(random, tokens * heads * spec.KeyWidth);
            var k = Fp16Rounded(random, tokens * spec.KeyWidth);
            var expected = new float[tokens * heads * rank];
            cpu.Plan(batch);
            cpu.Attend(0, spec, q, k, new float[tokens * rank], default, expected, new float[tokens * heads]);

            cuda.Plan(batch);
            var actual = buffers.Run(cuda, q, k, tokens, spec.OutputWidth, runOptions);
            for (var i = 0; i < expected.Length; i++)
            {
                worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
            }

            for (var r = 0; r < lengths.Length; r++)
            {
                past[r] += batch.Tokens(r).Length;
            }
        }

        output.WriteLine($"heads {heads}, key {rank + rope}, value {rank}, block {blockSize}: largest |cuda - cpu| {worst:G3} over a prefill and 3 decode steps");
        Assert.True(worst < 2e-2f, $"the LATENT kernel differs from the CPU kernel by {worst}");

        if (heads >= 16)
        {
            var latent = TimeDecode(cuda, buffers, runOptions, spec, blockSize);
            var gqaSpec = new AttentionLayerSpec(0, 32, 8, 64, 64, 0.125f, HeadMasked: false);
            using var gqa = new CudaAttentionBackend([gqaSpec], 0, TensorElementType.Float16, Blocks * 8, 256);
            var reference = TimeDecode(gqa, buffers, runOptions, gqaSpec, 256);
            output.WriteLine(
                $"256 decode rows at past 191, one layer, a synchronization per call: LATENT {latent:F1} us, " +
                $"GQA 1B layer (32/8 heads of 64, block 256) {reference:F1} us, ratio {latent / reference:F2}");
        }
    }

    /// <summary>Microseconds per attention call of 256 one-token rows at past 191 (each row its own blocks), after warm-up.</summary>
    private static double TimeDecode(CudaAttentionBackend backend, Buffers buffers, RunOptions runOptions, AttentionLayerSpec spec, int blockSize)
    {
        const int Rows = 256;
        const int Past = 191;
        var perRow = (Past / blockSize) + 1;
        var batch = new ForwardBatch();
        for (var r = 0; r < Rows; r++)
        {
            var table = Enumerable.Range(0, perRow).Select(b => ((r * perRow) + b) % backend.BlockCount).ToArray();
            batch.AddRow([0], Past, table, wantLogits: true);
        }

        var random = new Random(7);
        var q = Fp16Rounded(random, Rows * spec.QueryWidth);
        var k = Fp16Rounded(random, Rows * spec.KvHeads * spec.KeyWidth);
        backend.Plan(batch);
        for (var i = 0; i < 3; i++)
        {
            buffers.Run(backend, q, k, Rows, spec.OutputWidth, runOptions, spec.ValueIsKeyPrefix ? 0 : spec.KvHeads * spec.ValueWidth);
        }

        const int Calls = 20;
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < Calls; i++)
        {
            buffers.Attend(backend, Rows, spec.OutputWidth, runOptions);
        }

        return watch.Elapsed.TotalMicroseconds / Calls;
    }

    /// <summary>Random values in [-1, 1) rounded to fp16, so that both kernels see the same q and keys.</summary>
    private static float[] Fp16Rounded(Random random, int count)
    {
        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = (float)(Half)((random.NextSingle() * 2) - 1);
        }

        return values;
    }

    /// <summary>The device q, k, v and output tensors of one layer's calls.</summary>
    private sealed class Buffers : IDisposable
    {
        private readonly OrtMemoryInfo _memory = new(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, 0, OrtMemType.Default);
        private readonly DeviceTensorBuffer<ushort> _q;
        private readonly DeviceTensorBuffer<ushort> _k;
        private readonly DeviceTensorBuffer<ushort> _v;
        private readonly DeviceTensorBuffer<ushort> _output;
        private (int Query, int Key, int Value) _widths;

        public Buffers()
        {
            _q = new DeviceTensorBuffer<ushort>(0, _memory, TensorElementType.Float16, 1 << 20);
            _k = new DeviceTensorBuffer<ushort>(0, _memory, TensorElementType.Float16, 1 << 18);
            _v = new DeviceTensorBuffer<ushort>(0, _memory, TensorElementType.Float16, 1 << 18);
            _output = new DeviceTensorBuffer<ushort>(0, _memory, TensorElementType.Float16, 1 << 20);
        }

        /// <summary>
        /// Uploads q, k and <paramref name="valueWidth"/> zero values a token (none for a latent layer, whose graph has no
        /// value input), runs the layer, and returns its output as floats.
        /// </summary>
        public float[] Run(CudaAttentionBackend backend, float[] q, float[] k, int tokens, int outputWidth, RunOptions runOptions, int valueWidth = 0)
        {
            Upload(_q, q);
            Upload(_k, k);
            _widths = (q.Length / tokens, k.Length / tokens, Math.Max(1, valueWidth));
            _v.Reserve(tokens * _widths.Value).Clear();
            _v.Upload(tokens * _widths.Value);
            _output.Reserve(tokens * outputWidth);
            Attend(backend, tokens, outputWidth, runOptions);
            var bits = _output.Download(tokens * outputWidth);
            var result = new float[bits.Length];
            for (var i = 0; i < bits.Length; i++)
            {
                result[i] = (float)BitConverter.UInt16BitsToHalf(bits[i]);
            }

            return result;
        }

        /// <summary>One call over the tensors <see cref="Run"/> uploaded last.</summary>
        public void Attend(CudaAttentionBackend backend, int tokens, int outputWidth, RunOptions runOptions) =>
            backend.Attend(0, _q.View(tokens, _widths.Query), _k.View(tokens, _widths.Key), _v.View(tokens, _widths.Value), null, _output.View(tokens, outputWidth), runOptions);

        public void Dispose()
        {
            _q.Dispose();
            _k.Dispose();
            _v.Dispose();
            _output.Dispose();
            _memory.Dispose();
        }

        private static void Upload(DeviceTensorBuffer<ushort> buffer, float[] values)
        {
            var host = buffer.Reserve(values.Length);
            for (var i = 0; i < values.Length; i++)
            {
                host[i] = BitConverter.HalfToUInt16Bits((Half)values[i]);
            }

            buffer.Upload(values.Length);
        }
    }
}
