// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using Google.Protobuf;
using InferenceServer.Builder.Onnx.Proto;
using InferenceServer.Onnx.Attention;
using InferenceServer.Onnx.Runtime;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.GpuTests;

/// <summary>
/// A probe for issue 18's dense MLA decode (ADR 0008, <c>build --mla-attention mha</c>): the absorbed decode attention of
/// one layer written both ways the builder writes it over the same gathered blocks of the two pools (latent, rope key),
/// timed side by side at the dense MLA 1B's and DeepSeek-V2-Lite's shapes and checked against a C# reference.
/// <list type="bullet">
/// <item><b>gather</b>: what the paged MLA graph does by default: two score MatMuls (latent, rope) against the transposed
/// keys, their sum, the additive mask, Softmax, the output MatMul over the latents.</item>
/// <item><b>mha</b>: one <c>com.microsoft.MultiHeadAttention</c> with one head whose query rows are the row's heads, key
/// [latent, rope key], value the latents, and the mask as <c>attention_bias</c> (CUTLASS's memory-efficient kernel on CUDA, which
/// ONNX Runtime's tracker reports failing to launch for some large heads with a bias: microsoft/onnxruntime#28376,
/// #28388).</item>
/// </list>
/// A failed launch can leave the CUDA context unusable for the rest of the process, so the probe runs only with
/// <c>INFERENCE_SERVER_GPU_PROBES=1</c>, by itself (<c>-class InferenceServer.GpuTests.MlaAttentionOpProbeTests</c>,
/// bench/gpu/README.md). Written 2026-12-08 without a GPU.
/// </summary>
public sealed class MlaAttentionOpProbeTests(ITestOutputHelper output)
{
    private const int BlockSize = 256;
    private const float Masked = -30000f;

    [Theory]
    [InlineData(32, 256, 64, 256, 1)]  // the dense MLA 1B at concurrency 256, contexts up to 256 tokens
    [InlineData(32, 256, 64, 64, 16)]  // the same at 4,096-token contexts (the capacity goal's sequences)
    [InlineData(16, 512, 64, 64, 4)]   // DeepSeek-V2-Lite at 1,024-token contexts
    public void OneLayersDecodeAttention_GatherFormAgainstMultiHeadAttention(int heads, int rank, int rope, int rows, int tableWidth)
    {
        if (GpuFixtures.CudaUnavailableReason is { } reason)
        {
            Assert.Skip(reason);
        }

        if (GpuFixtures.ProbesDisabledReason is { } probes)
        {
            Assert.Skip(probes);
        }

        var width = rank + rope;
        var keys = tableWidth * BlockSize;
        var blocks = (rows * tableWidth) + 8;
        var random = new Random(11);
        var latentPool = Fp16Values(random, (long)blocks * BlockSize * rank, 1f);
        var ropePool = Fp16Values(random, (long)blocks * BlockSize * rope, 1f);
        var query = Fp16Values(random, (long)rows * heads * width, 1f / MathF.Sqrt(width));
        var blockIds = Enumerable.Range(0, blocks).OrderBy(_ => random.Next()).Take(rows * tableWidth).Select(b => (long)b).ToArray();
        var lengths = Enumerable.Range(0, rows).Select(r => r == 0 ? keys : random.Next(1, keys + 1)).ToArray();
        var bias = new ushort[rows * heads * keys];
        for (var r = 0; r < rows; r++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var l = 0; l < keys; l++)
                {
                    bias[(((r * heads) + h) * keys) + l] = BitConverter.HalfToUInt16Bits((Half)(l < lengths[r] ? 0f : Masked));
                }
            }
        }

        using var memory = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, 0, OrtMemType.Default);
        using var latentBuffer = Upload(memory, TensorElementType.Float16, latentPool);
        using var ropeBuffer = Upload(memory, TensorElementType.Float16, ropePool);
        using var queryBuffer = Upload(memory, TensorElementType.Float16, query);
        using var biasBuffer = Upload(memory, TensorElementType.Float16, bias);
        using var tableBuffer = Upload(memory, TensorElementType.Int64, blockIds);
        var results = new Dictionary<string, (float[] Values, double Ms)>();
        foreach (var form in new[] { "gather", "mha" })
        {
            using var outputBuffer = new DeviceTensorBuffer<ushort>(0, memory, TensorElementType.Float16, rows * heads * rank);
            using var session = LayerPoolSessions.CreateSession(Model(form, heads, rank, rope, tableWidth), 0, 0, IntPtr.Zero, "probe");
            using var binding = new StepBinding(session);
            using var runOptions = new RunOptions();
            binding.Input("latent_pool", latentBuffer.View(blocks, (long)BlockSize * rank));
            binding.Input("rope_pool", ropeBuffer.View(blocks, (long)BlockSize * rope));
            binding.Input("query", queryBuffer.View(rows * heads, width));
            binding.Input("bias", biasBuffer.View(rows * heads, keys));
            binding.Input("block_table", tableBuffer.View(rows, tableWidth));
            binding.Output("output", outputBuffer.View(rows * heads, rank));
            for (var i = 0; i < 5; i++)
            {
                binding.Run(runOptions);
            }

            const int Calls = 30;
            var started = Stopwatch.GetTimestamp();
            for (var i = 0; i < Calls; i++)
            {
                binding.Run(runOptions);
            }

            var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds / Calls;
            results[form] = (ToFloats(outputBuffer.Download(rows * heads * rank)), ms);
        }

        // Both against a C# reference on the first and last rows (the first sees every key).
        foreach (var r in new[] { 0, rows - 1 })
        {
            var expected = Reference(latentPool, ropePool, query, blockIds, lengths[r], r, heads, rank, rope, tableWidth);
            foreach (var form in results.Keys)
            {
                var worst = 0f;
                for (var i = 0; i < expected.Length; i++)
                {
                    worst = Math.Max(worst, Math.Abs(expected[i] - results[form].Values[(r * heads * rank) + i]));
                }

                Assert.True(worst < 2e-2f, $"{form}, row {r}: largest |value - reference| {worst}");
            }
        }

        output.WriteLine(FormattableString.Invariant(
            $"heads {heads}, key {width} (latent {rank} + rope {rope}), {rows} rows of {keys} keys: gather form {results["gather"].Ms:F3} ms, MultiHeadAttention {results["mha"].Ms:F3} ms a call (eager, with the launches), mha / gather {results["mha"].Ms / results["gather"].Ms:F2}"));
    }

    /// <summary>
    /// One layer as the builder writes it (DecoderGraphBuilder.PagedMla): gather the rows' blocks of both pools, then attend
    /// <paramref name="form"/>'s way; [rows x heads, rank] out.
    /// </summary>
    private static byte[] Model(string form, int heads, int rank, int rope, int tableWidth)
    {
        const TensorProto.Types.DataType T = TensorProto.Types.DataType.Float16;
        var width = rank + rope;
        var keys = tableWidth * BlockSize;
        var graph = new GraphProto { Name = "mla_probe_" + form };
        graph.Input.Add(PagedAttentionGraph.Info("latent_pool", T, "blocks", BlockSize * rank));
        graph.Input.Add(PagedAttentionGraph.Info("rope_pool", T, "blocks", BlockSize * rope));
        graph.Input.Add(PagedAttentionGraph.Info("query", T, "query_rows", width));
        graph.Input.Add(PagedAttentionGraph.Info("bias", T, "query_rows", keys));
        graph.Input.Add(PagedAttentionGraph.Info("block_table", TensorProto.Types.DataType.Int64, "rows", tableWidth));
        graph.Initializer.Add(PagedAttentionGraph.Int64s("latents_shape", 0, -1, rank));
        graph.Initializer.Add(PagedAttentionGraph.Int64s("rope_shape", 0, -1, rope));
        graph.Initializer.Add(PagedAttentionGraph.Int64s("query_shape", -1, heads, width));
        graph.Initializer.Add(PagedAttentionGraph.Int64s("rows_shape", -1, rank));
        graph.Node.Add(PagedAttentionGraph.Node("Gather", "gathered_latents", ["latent_pool", "block_table"]));
        graph.Node.Add(PagedAttentionGraph.Node("Gather", "gathered_rope", ["rope_pool", "block_table"]));
        graph.Node.Add(PagedAttentionGraph.Node("Reshape", "row_latents", ["gathered_latents", "latents_shape"]));
        graph.Node.Add(PagedAttentionGraph.Node("Reshape", "row_rope_keys", ["gathered_rope", "rope_shape"]));
        graph.Node.Add(PagedAttentionGraph.Node("Reshape", "row_queries", ["query", "query_shape"]));
        if (form == "gather")
        {
            graph.Initializer.Add(PagedAttentionGraph.Int64s("split", rank, rope));
            graph.Initializer.Add(PagedAttentionGraph.Int64s("bias_shape", -1, heads, keys));
            var split = new NodeProto { OpType = "Split", Name = "query_split", Input = { "row_queries", "split" }, Output = { "query_latent", "query_rope" } };
            split.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = -1 });
            graph.Node.Add(split);
            foreach (var (name, input) in new[] { ("row_latents_t", "row_latents"), ("row_rope_keys_t", "row_rope_keys") })
            {
                var transpose = PagedAttentionGraph.Node("Transpose", name, [input]);
                transpose.Attribute.Add(new AttributeProto { Name = "perm", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 0, 2, 1 } });
                graph.Node.Add(transpose);
            }

            graph.Node.Add(PagedAttentionGraph.Node("MatMul", "latent_scores", ["query_latent", "row_latents_t"]));
            graph.Node.Add(PagedAttentionGraph.Node("MatMul", "rope_scores", ["query_rope", "row_rope_keys_t"]));
            graph.Node.Add(PagedAttentionGraph.Node("Add", "scores", ["latent_scores", "rope_scores"]));
            graph.Node.Add(PagedAttentionGraph.Node("Reshape", "row_bias", ["bias", "bias_shape"]));
            graph.Node.Add(PagedAttentionGraph.Node("Add", "masked", ["scores", "row_bias"]));
            var softmax = PagedAttentionGraph.Node("Softmax", "weights", ["masked"]);
            softmax.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = -1 });
            graph.Node.Add(softmax);
            graph.Node.Add(PagedAttentionGraph.Node("MatMul", "attended", ["weights", "row_latents"]));
        }
        else
        {
            // One head whose query rows are the row's heads; key [latent, rope key], value the latents.
            graph.Initializer.Add(PagedAttentionGraph.Int64s("bias_shape", -1, 1, heads, keys));
            var concat = PagedAttentionGraph.Node("Concat", "row_keys", ["row_latents", "row_rope_keys"]);
            concat.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = -1 });
            graph.Node.Add(concat);
            graph.Node.Add(PagedAttentionGraph.Node("Reshape", "row_bias", ["bias", "bias_shape"]));
            var mha = new NodeProto { OpType = "MultiHeadAttention", Name = "attended", Domain = "com.microsoft" };
            mha.Input.AddRange(["row_queries", "row_keys", "row_latents", string.Empty, string.Empty, "row_bias"]);
            mha.Output.Add("attended");
            mha.Attribute.Add(new AttributeProto { Name = "num_heads", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
            mha.Attribute.Add(new AttributeProto { Name = "scale", Type = AttributeProto.Types.AttributeType.Float, F = 1f });
            graph.Node.Add(mha);
        }

        graph.Node.Add(PagedAttentionGraph.Node("Reshape", "output", ["attended", "rows_shape"]));
        graph.Output.Add(PagedAttentionGraph.Info("output", T, "query_rows", rank));
        return PagedAttentionGraph.Serialize(graph);
    }

    /// <summary>Row <paramref name="row"/>'s attention in fp64 over the fp16 values (key [latent, rope key], value the latent): [heads, rank].</summary>
    private static float[] Reference(ushort[] latentPool, ushort[] ropePool, ushort[] query, long[] blockIds, int length, int row, int heads, int rank, int rope, int tableWidth)
    {
        var width = rank + rope;
        var result = new float[heads * rank];
        var scores = new double[length];
        for (var h = 0; h < heads; h++)
        {
            var q = ((row * heads) + h) * width;
            for (var l = 0; l < length; l++)
            {
                var slot = Slot(blockIds, row, tableWidth, l);
                double dot = 0;
                for (var i = 0; i < rank; i++)
                {
                    dot += (double)BitConverter.UInt16BitsToHalf(query[q + i]) * (double)BitConverter.UInt16BitsToHalf(latentPool[(slot * rank) + i]);
                }

                for (var i = 0; i < rope; i++)
                {
                    dot += (double)BitConverter.UInt16BitsToHalf(query[q + rank + i]) * (double)BitConverter.UInt16BitsToHalf(ropePool[(slot * rope) + i]);
                }

                scores[l] = dot;
            }

            var max = scores.Max();
            var sum = scores.Sum(s => Math.Exp(s - max));
            for (var l = 0; l < length; l++)
            {
                var weight = Math.Exp(scores[l] - max) / sum;
                var slot = Slot(blockIds, row, tableWidth, l);
                for (var i = 0; i < rank; i++)
                {
                    result[(h * rank) + i] += (float)(weight * (double)BitConverter.UInt16BitsToHalf(latentPool[(slot * rank) + i]));
                }
            }
        }

        return result;
    }

    /// <summary>The pool slot (block x block size + offset) of key <paramref name="key"/> of row <paramref name="row"/>.</summary>
    private static long Slot(long[] blockIds, int row, int tableWidth, int key) =>
        (blockIds[(row * tableWidth) + (key / BlockSize)] * BlockSize) + (key % BlockSize);

    private static ushort[] Fp16Values(Random random, long count, float scale)
    {
        var values = new ushort[count];
        for (long i = 0; i < count; i++)
        {
            values[i] = BitConverter.HalfToUInt16Bits((Half)(((random.NextSingle() * 2) - 1) * scale));
        }

        return values;
    }

    private static float[] ToFloats(ReadOnlySpan<ushort> bits)
    {
        var values = new float[bits.Length];
        for (var i = 0; i < bits.Length; i++)
        {
            values[i] = (float)BitConverter.UInt16BitsToHalf(bits[i]);
        }

        return values;
    }

    private static DeviceTensorBuffer<T> Upload<T>(OrtMemoryInfo memory, TensorElementType type, T[] values)
        where T : unmanaged
    {
        var buffer = new DeviceTensorBuffer<T>(0, memory, type, values.Length);
        values.CopyTo(buffer.Reserve(values.Length));
        buffer.Upload(values.Length);
        return buffer;
    }
}
