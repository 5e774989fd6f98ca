// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.GpuTests;

/// <summary><c>build --dtype int4 --device cuda</c>: the paged graph with fp16 MatMulNBits runs on the CUDA device near the fp32 reference.</summary>
public sealed class Int4PagedTests(ITestOutputHelper output)
{
    /// <summary>Largest |int4 logit - fp32 reference| accepted on the random-weight fixtures (the CPU int4 tests' bound).</summary>
    private const float Tolerance = 1.0f;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Int4PagedGraph_FirstStepLogits_CloseToTheReference_ArgmaxAgrees(bool cudaGraphs)
    {
        if (GpuFixtures.CudaUnavailableReason is { } reason)
        {
            Assert.Skip(reason);
        }

        var options = new OnnxSessionOptions { Device = "cuda", CudaGraphs = cudaGraphs };
        using var model = Assert.IsType<PagedDecoderModel>(DecoderModels.Open(ModelPackage.Load(GpuFixtures.BuildPaged("llama-gqa", "int4")), options));
        var cases = GpuFixtures.References("llama-gqa");
        var vocab = model.Spec.VocabularySize;
        using var runner = model.CreateRunner(cases.Count, model.ChooseBlockSize(16));
        var batch = new ForwardBatch();
        for (var r = 0; r < cases.Count; r++)
        {
            batch.AddRow(cases[r].Prompt, 0, [r], RowLogits.Last);
        }

        var logits = new float[cases.Count * vocab];
        runner.Forward(batch, logits);
        var worst = 0f;
        for (var r = 0; r < cases.Count; r++)
        {
            var row = logits.AsSpan(r * vocab, vocab);
            for (var i = 0; i < vocab; i++)
            {
                worst = Math.Max(worst, Math.Abs(row[i] - cases[r].FirstStepLogits[i]));
            }

            Assert.Equal(LogitMath.ArgMax(row), batch.Argmax[r]);
            if (cases[r].Top2Margin[0] > 2 * Tolerance)
            {
                Assert.Equal(cases[r].Greedy[0], batch.Argmax[r]);
            }
        }

        output.WriteLine($"int4 paged llama-gqa: worst |logit - fp32 reference| {worst}");
        Assert.True(worst <= Tolerance, $"worst logit error {worst}");
    }
}
