// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.GpuTests;

/// <summary>
/// Hugging Face exports (the fixtures' fp32 <c>model.onnx</c>) on the CUDA device, rewritten at load (ADR 0004) and as
/// they are: the rewritten graph runs on the CUDA provider and gives the original's first-step logits, and both stay within
/// the fp32 tolerance of transformers' reference.
/// </summary>
public sealed class DenseGraphRewriteTests(ITestOutputHelper output)
{
    // ONNX Runtime's CUDA MatMuls may use TF32, so fp32 logits differ from transformers' by up to about 1e-2 here.
    private const float ReferenceTolerance = 0.02f;

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    public void RewrittenGraph_OnCuda_GivesTheOriginalsLogits(string fixture)
    {
        if (GpuFixtures.CudaUnavailableReason is { } reason)
        {
            Assert.Skip(reason);
        }

        var cases = GpuFixtures.References(fixture);
        var (original, originalNote) = FirstStepLogits(fixture, rewrite: false, cases);
        var (rewritten, rewrittenNote) = FirstStepLogits(fixture, rewrite: true, cases);
        Assert.Null(originalNote);
        Assert.Contains("without the grouped-query repeat", rewrittenNote, StringComparison.Ordinal);

        var vocab = cases[0].FirstStepLogits.Length;
        var between = 0f;
        var toReference = 0f;
        for (var r = 0; r < cases.Count; r++)
        {
            for (var i = 0; i < vocab; i++)
            {
                between = Math.Max(between, Math.Abs(original[r * vocab + i] - rewritten[r * vocab + i]));
                toReference = Math.Max(toReference, Math.Abs(rewritten[r * vocab + i] - cases[r].FirstStepLogits[i]));
            }

            Assert.Equal(LogitMath.ArgMax(original.AsSpan(r * vocab, vocab)), LogitMath.ArgMax(rewritten.AsSpan(r * vocab, vocab)));
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{fixture}: max |rewritten - original| = {between:G3}, max |rewritten - reference| = {toReference:G3}"));
        Assert.True(between <= ReferenceTolerance, $"rewritten and original differ by {between}");
        Assert.True(toReference <= ReferenceTolerance, $"rewritten and transformers differ by {toReference}");
    }

    private static (float[] Logits, string? Note) FirstStepLogits(string fixture, bool rewrite, List<ReferenceCase> cases)
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(GpuFixtures.Fixture(fixture)), new OnnxSessionOptions { Device = "cuda", RewriteGraph = rewrite });
        Assert.True(model.Device.IsCuda);
        using var runner = new DenseKvRunner(model, 64, 16);
        var batch = new ForwardBatch();
        var block = 0;
        foreach (var item in cases)
        {
            var blocks = Enumerable.Range(block, (item.Prompt.Length + 15) / 16).ToArray();
            block += blocks.Length;
            batch.AddRow(item.Prompt, 0, blocks, RowLogits.Last);
        }

        var logits = new float[cases.Count * model.Spec.VocabularySize];
        runner.Forward(batch, logits);
        return (logits, model.GraphNote);
    }
}
