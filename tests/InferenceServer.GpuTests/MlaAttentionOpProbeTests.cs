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
/// A probe for issue 18's dense MLA decode (ADR 0008, "MultiHeadAttention over the gathered blocks"): the absorbed decode
/// attention of one layer written two ways over the same gathered blocks, timed side by side at the dense MLA 1B's and
/// DeepSeek-V2-Lite's shapes and checked against each other and a C# reference.
/// <list type="bullet">
/// <item><b>gather</b>: what the paged MLA graph does today: score MatMul against the transposed keys, additive mask,
/// Softmax, output MatMul.</item>
/// <item><b>mha</b>: one <c>com.microsoft.MultiHeadAttention</c> with one head whose query rows are the row's heads, the
/// same keys as key and value, and the mask as <c>attention_bias</c> (CUTLASS's memory-efficient kernel on CUDA, which
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
    [InlineData(32, 320, 256, 1)]  // the dense MLA 1B at concurrency 256, contexts up to 256 tokens
    [InlineData(32, 320, 64, 16)]  // the same at 4,096-token contexts (the capacity goal's sequences)
    [InlineData(16, 576, 64, 4)]   // DeepSeek-V2-Lite at 1,024-token contexts
    public void OneLayersDecodeAttention_GatherFormAgainstMultiHeadAttention(int heads, int width, int rows, int tableWidth)
    {
        if (GpuFixtures.CudaUnavailableReason is { } reason)
        {
            Assert.Skip(reason);
        }

        if (Environment.GetEnvironmentVariable("INFERENCE_SERVER_GPU_PROBES") != "1")
        {
            Assert.Skip("a probe: set INFERENCE_SERVER_GPU_PROBES=1 and run this class alone (a failed kernel launch may end the process's CUDA context)");
        }

        var keys = tableWidth * BlockSize;
        var blocks = (rows * tableWidth) + 8;
        var random = new Random(11);
        var pool = Fp16Values(random, (long)blocks * BlockSize * width, 1f);
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
        using var poolBuffer = Upload(memory, TensorElementType.Float16, pool);
        using var queryBuffer = Upload(memory, TensorElementType.Float16, query);
        using var biasBuffer = Upload(memory, TensorElementType.Float16, bias);
        using var tableBuffer = Upload(memory, TensorElementType.Int64, blockIds);
        using var gatherOut = new DeviceTensorBuffer<ushort>(0, memory, TensorElementType.Float16, rows * heads * width);
        using var mhaOut = new DeviceTensorBuffer<ushort>(0, memory, TensorElementType.Float16, rows * heads * width);
        var results = new Dictionary<string, (float[] Values, double Ms)>();
        foreach (var (form, buffer) in new[] { ("gather", gatherOut), ("mha", mhaOut) })
        {
            using var session = LayerPoolSessions.CreateSession(Model(form, heads, width, tableWidth), 0, 0, IntPtr.Zero, "probe");
            using var binding = new StepBinding(session);
            using var runOptions = new RunOptions();
            binding.Input("pool", poolBuffer.View(blocks, (long)BlockSize * width));
            binding.Input("query", queryBuffer.View(rows * heads, width));
            binding.Input("bias", biasBuffer.View(rows * heads, keys));
            binding.Input("block_table", tableBuffer.View(rows, tableWidth));
            binding.Output("output", buffer.View(rows * heads, width));
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
            results[form] = (ToFloats(buffer.Download(rows * heads * width)), ms);
        }

        // Both against a C# reference on the first and last rows (the first sees every key), and against each other.
        foreach (var r in new[] { 0, rows - 1 })
        {
            var expected = Reference(pool, query, blockIds, lengths[r], r, heads, width, tableWidth);
            foreach (var form in results.Keys)
            {
                var worst = 0f;
                for (var i = 0; i < expected.Length; i++)
                {
                    worst = Math.Max(worst, Math.Abs(expected[i] - results[form].Values[(r * heads * width) + i]));
                }

                Assert.True(worst < 2e-2f, $"{form}, row {r}: largest |value - reference| {worst}");
            }
        }

        output.WriteLine(FormattableString.Invariant(
            $"heads {heads}, key width {width}, {rows} rows of {keys} keys: gather form {results["gather"].Ms:F3} ms, MultiHeadAttention {results["mha"].Ms:F3} ms a call (eager, with the launches), mha / gather {results["mha"].Ms / results["gather"].Ms:F2}"));
    }

    /// <summary>The one-layer graph: gather the rows' blocks into [rows, keys, width], then attend <paramref name="form"/>'s way.</summary>
    private static byte[] Model(string form, int heads, int width, int tableWidth)
    {
        const TensorProto.Types.DataType T = TensorProto.Types.DataType.Float16;
        var keys = tableWidth * BlockSize;
        var graph = new GraphProto { Name = "mla_probe_" + form };
        graph.Input.Add(PagedAttentionGraph.Info("pool", T, "blocks", BlockSize * width));
        graph.Input.Add(PagedAttentionGraph.Info("query", T, "query_rows", width));
        graph.Input.Add(PagedAttentionGraph.Info("bias", T, "query_rows", keys));
        graph.Input.Add(PagedAttentionGraph.Info("block_table", TensorProto.Types.DataType.Int64, "rows", tableWidth));
        graph.Initializer.Add(PagedAttentionGraph.Int64s("keys_shape", 0, -1, width));
        graph.Initializer.Add(PagedAttentionGraph.Int64s("query_shape", -1, heads, width));
        graph.Initializer.Add(PagedAttentionGraph.Int64s("rows_shape", -1, width));
        graph.Node.Add(PagedAttentionGraph.Node("Gather", "gathered", ["pool", "block_table"]));
        graph.Node.Add(PagedAttentionGraph.Node("Reshape", "row_keys", ["gathered", "keys_shape"]));
        graph.Node.Add(PagedAttentionGraph.Node("Reshape", "row_queries", ["query", "query_shape"]));
        string attended;
        if (form == "gather")
        {
            graph.Initializer.Add(PagedAttentionGraph.Int64s("bias_shape", -1, heads, keys));
            var transpose = PagedAttentionGraph.Node("Transpose", "row_keys_t", ["row_keys"]);
            transpose.Attribute.Add(new AttributeProto { Name = "perm", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 0, 2, 1 } });
            graph.Node.Add(transpose);
            graph.Node.Add(PagedAttentionGraph.Node("MatMul", "scores", ["row_queries", "row_keys_t"]));
            graph.Node.Add(PagedAttentionGraph.Node("Reshape", "row_bias", ["bias", "bias_shape"]));
            graph.Node.Add(PagedAttentionGraph.Node("Add", "masked", ["scores", "row_bias"]));
            var softmax = PagedAttentionGraph.Node("Softmax", "weights", ["masked"]);
            softmax.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = -1 });
            graph.Node.Add(softmax);
            graph.Node.Add(PagedAttentionGraph.Node("MatMul", "attended", ["weights", "row_keys"]));
            attended = "attended";
        }
        else
        {
            // One head whose query rows are the row's heads: [rows, heads, width] against [rows, keys, width].
            graph.Initializer.Add(PagedAttentionGraph.Int64s("bias_shape", -1, 1, heads, keys));
            graph.Node.Add(PagedAttentionGraph.Node("Reshape", "row_bias", ["bias", "bias_shape"]));
            var mha = new NodeProto { OpType = "MultiHeadAttention", Name = "attended", Domain = "com.microsoft" };
            mha.Input.AddRange(["row_queries", "row_keys", "row_keys", string.Empty, string.Empty, "row_bias"]);
            mha.Output.Add("attended");
            mha.Attribute.Add(new AttributeProto { Name = "num_heads", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
            mha.Attribute.Add(new AttributeProto { Name = "scale", Type = AttributeProto.Types.AttributeType.Float, F = 1f });
            graph.Node.Add(mha);
            attended = "attended";
        }

        var rowsOut = PagedAttentionGraph.Node("Reshape", "output", [attended, "rows_shape"]);
        graph.Node.Add(rowsOut);
        graph.Output.Add(PagedAttentionGraph.Info("output", T, "query_rows", width));
        return PagedAttentionGraph.Serialize(graph);
    }

    /// <summary>Row <paramref name="row"/>'s attention in fp64 over the fp16 values: [heads, width].</summary>
    private static float[] Reference(ushort[] pool, ushort[] query, long[] blockIds, int length, int row, int heads, int width, int tableWidth)
    {
        var result = new float[heads * width];
        var scores = new double[length];
        for (var h = 0; h < heads; h++)
        {
            var q = ((row * heads) + h) * width;
            for (var l = 0; l < length; l++)
            {
                var key = KeyOffset(blockIds, row, tableWidth, l, width);
                double dot = 0;
                for (var i = 0; i < width; i++)
                {
                    dot += (double)BitConverter.UInt16BitsToHalf(query[q + i]) * (double)BitConverter.UInt16BitsToHalf(pool[key + i]);
                }

                scores[l] = dot;
            }

            var max = scores.Max();
            var sum = scores.Sum(s => Math.Exp(s - max));
            for (var l = 0; l < length; l++)
            {
                var weight = Math.Exp(scores[l] - max) / sum;
                var key = KeyOffset(blockIds, row, tableWidth, l, width);
                for (var i = 0; i < width; i++)
                {
                    result[(h * width) + i] += (float)(weight * (double)BitConverter.UInt16BitsToHalf(pool[key + i]));
                }
            }
        }

        return result;
    }

    private static long KeyOffset(long[] blockIds, int row, int tableWidth, int key, int width) =>
        ((blockIds[(row * tableWidth) + (key / BlockSize)] * BlockSize) + (key % BlockSize)) * width;

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
