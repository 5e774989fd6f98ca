// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Graph;
using InferenceServer.Builder.Onnx.Proto;
using Microsoft.ML.OnnxRuntime;
using static InferenceServer.Builder.Graph.OnnxGraphWriter;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// ONNX Runtime's own CPU <c>MatMulNBits</c> kernel, fed the builder's packing of a weight, computes
/// <c>A @ dequantize(W)^T</c> with the dequantization <see cref="Int4QuantizerTests"/> checks against the contract: the
/// layout, scale order, zero-point nibbles and padding agree with the kernel, not only with this project's reading.
/// </summary>
public sealed class MatMulNBitsKernelTests
{
    [Theory]
    [InlineData(32, false, 64, 24)]
    [InlineData(32, true, 64, 24)]
    [InlineData(128, false, 96, 10)]
    [InlineData(128, true, 200, 9)]
    [InlineData(32, true, 100, 5)]
    public void OrtKernel_ComputesTheDequantizedProduct(int blockSize, bool zeroPoints, int k, int n)
    {
        const int M = 3;
        var random = new Random(k + n);
        var weight = Enumerable.Range(0, n * k).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var a = Enumerable.Range(0, M * k).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var quantizer = new Int4Quantizer(blockSize, zeroPoints);
        var folder = BuiltModels.TempDirectory($"matmulnbits-{blockSize}-{zeroPoints}-{k}-{n}");
        var modelPath = Path.Combine(folder, "model.onnx");
        using (var data = new ExternalDataWriter(Path.Combine(folder, "model.onnx.data")))
        {
            var g = new OnnxGraphWriter(data);
            g.Input("a", TensorProto.Types.DataType.Float, "m", k);
            var q = quantizer.Quantize(weight, n, k);
            List<string> inputs = ["a", g.PackedWeight("w_q4", q.Packed, (long)n * k, n, quantizer.BlocksPerRow(k), blockSize / 2), g.Scales("w_scales", q.Scales, q.Scales.Length)];
            if (q.ZeroPoints is { } zp)
            {
                inputs.Add(g.PackedWeight("w_zp", zp, 0, zp.Length));
            }

            g.NodeMulti("MatMulNBits", "mm", inputs, ["y"], [Attr("K", (long)k), Attr("N", (long)n), Attr("bits", 4L), Attr("block_size", (long)blockSize)], "com.microsoft");
            g.Output("y", TensorProto.Types.DataType.Float, "m", n);
            g.Save(modelPath, DecoderGraphBuilder.IrVersion, [(string.Empty, DecoderGraphBuilder.OnnxOpset), ("com.microsoft", 1)], new Dictionary<string, string>());
        }

        var dequantized = Int4Quantizer.Dequantize(quantizer.Quantize(weight, n, k));
        using var session = new InferenceSession(modelPath);
        using var input = OrtValue.CreateTensorValueFromMemory(a, [M, k]);
        using var outputs = session.Run(new RunOptions(), ["a"], [input], ["y"]);
        var y = outputs[0].GetTensorDataAsSpan<float>();
        for (var row = 0; row < M; row++)
        {
            for (var col = 0; col < n; col++)
            {
                var expected = 0.0;
                for (var i = 0; i < k; i++)
                {
                    expected += a[(row * k) + i] * dequantized[(col * k) + i];
                }

                Assert.True(Math.Abs(expected - y[(row * n) + col]) < 1e-4, $"y[{row}, {col}] = {y[(row * n) + col]}, expected {expected}");
            }
        }
    }
}
