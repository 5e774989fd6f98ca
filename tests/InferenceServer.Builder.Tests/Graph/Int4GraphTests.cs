// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Inspection;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// <c>build --dtype int4</c>: the projections become <c>com.microsoft.MatMulNBits</c>, the graphs run in ONNX Runtime on the
/// CPU through the server's own runner, and their logits stay close to the fp32 reference.
/// </summary>
public sealed class Int4GraphTests
{
    /// <summary>
    /// Largest |int4 logit - reference logit| allowed on the random-weight fixtures, whose logits span about -2.4 to 2.4
    /// (measured worst: 0.83, block 128). Where the reference's top-2 margin exceeds twice this, the argmax cannot
    /// differ, so that is asserted too. That the kernel computes exactly the quantized product is
    /// <see cref="MatMulNBitsKernelTests"/>' job; this bounds the quantization error itself.
    /// </summary>
    private const float FixtureTolerance = 1.0f;

    /// <summary>The same bound for the trained default model, whose logits span tens (measured worst over 192 steps: 3.3, block 32).</summary>
    private const float DefaultModelTolerance = 4.0f;

    [Theory]
    [InlineData("llama-gqa", 32, false)]
    [InlineData("llama-gqa", 32, true)]
    [InlineData("llama-gqa", 128, false)]
    [InlineData("qwen2", 32, false)]
    [InlineData("qwen2", 128, true)]
    [InlineData("llama-moh", 32, false)]
    [InlineData("qwen2-moe", 32, false)]
    public void FirstStepLogits_Int4_CloseToTransformers(string fixture, int blockSize, bool zeroPoints)
    {
        var folder = Build(BuiltModels.Fixture(fixture), $"{fixture}-int4-{blockSize}-{zeroPoints}", blockSize, zeroPoints);
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(folder));
        var cases = BuiltModels.References(fixture);
        var vocab = model.Spec.VocabularySize;
        var logits = BuiltDecoderTests.FirstStepLogits(model, cases);
        for (var r = 0; r < cases.Count; r++)
        {
            AssertClose(cases[r].FirstStepLogits, logits.AsSpan(r * vocab, vocab), FixtureTolerance, $"{fixture} row {r}");
        }
    }

    [Fact]
    public void TinyPycoder_Int4_TracksFp32StepByStep()
    {
        // Teacher-forced on the fp32 greedy continuation: at every one of the 4 x 48 steps the int4 logits stay within
        // the tolerance, and int4 picks the same token wherever fp32's top-2 margin is wider than twice it.
        var checkpoint = Path.Combine(BuiltModels.Root, "models", "tiny-pycoder");
        var int4 = Build(checkpoint, "tiny-pycoder-int4", 32, zeroPoints: false);
        using var runner = new DenseKvRunner(OnnxDecoderModel.Open(ModelPackage.Load(int4)), 64, 16);
        var cases = BuiltModels.ReferencesAt(Path.Combine(checkpoint, "reference.json"));
        using var reference = new DenseKvRunner(OnnxDecoderModel.Open(ModelPackage.Load(Build(checkpoint, "tiny-pycoder-fp32", 32, false, "fp32"))), 64, 16);
        var vocab = runner.Spec.VocabularySize;
        var expected = new float[vocab];
        var actual = new float[vocab];
        var batch = new ForwardBatch();
        var agreed = 0;
        foreach (var (prompt, greedy, _) in cases)
        {
            var table = Enumerable.Range(0, ((prompt.Length + greedy.Length) / 16) + 1).ToArray();
            for (var step = 0; step < greedy.Length; step++)
            {
                batch.Clear();
                if (step == 0)
                {
                    batch.AddRow(prompt, 0, table, wantLogits: true);
                }
                else
                {
                    batch.AddRow([greedy[step - 1]], prompt.Length + step - 1, table, wantLogits: true);
                }

                reference.Forward(batch, expected);
                runner.Forward(batch, actual);
                Assert.Equal(greedy[step], LogitMath.ArgMax(expected));
                AssertClose(expected, actual, DefaultModelTolerance, $"step {step}");
                agreed += LogitMath.ArgMax(actual) == greedy[step] ? 1 : 0;
            }
        }

        // Most steps have a clear winner; int4 must agree on nearly all of them, not just the asserted wide-margin ones.
        Assert.True(agreed >= cases.Count * 48 * 9 / 10, $"int4 agreed with fp32 on {agreed} of {cases.Count * 48} steps");
    }

    [Fact]
    public void Int4Graph_ProjectionsAreMatMulNBits_HeadAndEmbeddingStayFp32()
    {
        var folder = Build(BuiltModels.Fixture("llama-gqa"), "llama-gqa-int4-32-False", 32, false);
        var inspection = ModelInspector.Inspect(folder);
        var ops = inspection.Ops.ToDictionary(p => p.Key, p => p.Value);

        // 3 layers x (packed q|k|v, o, packed gate|up, down); the LM head is the only Gemm left.
        Assert.Equal(12, ops["com.microsoft.MatMulNBits"]);
        Assert.Equal(1, ops["ai.onnx.Gemm"]);
        Assert.Equal("int4", inspection.DType);
        Assert.Equal(ModelBuilder.DenseGraph, inspection.Graph);
        Assert.Contains("com.microsoft:1", inspection.Opsets);
    }

    [Fact]
    public void Int4ForCuda_BuildsThePagedGraphWithFp16ScalesAndPackedQkv()
    {
        var folder = BuiltModels.TempDirectory("llama-gqa-int4-cuda");
        var result = ModelBuilder.Build(new BuildOptions { CheckpointDirectory = BuiltModels.Fixture("llama-gqa"), OutputDirectory = folder, DType = "int4", Device = "cuda" });
        Assert.Equal(ModelBuilder.PagedGraph, result.Graph);

        // fp16 KV: 3 layers x (key + value) x 2 kv heads x 16 x 2 bytes.
        Assert.Equal(3 * 2 * 2 * 16 * 2, result.KvBytesPerToken);
        var ops = ModelInspector.Inspect(folder).Ops.ToDictionary(p => p.Key, p => p.Value);

        // 3 layers x (packed qkv, o, packed gate|up, down).
        Assert.Equal(12, ops["com.microsoft.MatMulNBits"]);
    }

    [Theory]
    [InlineData("--int4-block-size", "64", "32 or 128")]
    [InlineData("--int4-block-size", "x", "32 or 128")]
    [InlineData("--dtype", "int3", "int4")]
    public void BadInt4Arguments_AreRefusedWithUsage(string name, string value, string message)
    {
        Assert.False(BuilderCommand.TryParse(["--checkpoint", "c", "--out", "o", "--dtype", "int4", name, value], out _, out var problem));
        Assert.Contains(message, problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--int4-zero-points")]
    [InlineData("--int4-block-size", "128")]
    public void Int4Flags_WithoutInt4_AreRefused(params string[] flag)
    {
        Assert.False(BuilderCommand.TryParse(["--checkpoint", "c", "--out", "o", .. flag], out _, out var problem));
        Assert.Contains("apply to --dtype int4, not fp32", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Int4Flags_ParseIntoTheOptions()
    {
        Assert.True(BuilderCommand.TryParse(["build", "--checkpoint", "c", "--out", "o", "--dtype", "int4", "--int4-zero-points", "--int4-block-size", "128"], out var options, out _));
        Assert.Equal(("int4", 128, true), (options!.DType, options.Int4BlockSize, options.Int4ZeroPoints));
    }

    private static string Build(string checkpoint, string name, int blockSize, bool zeroPoints, string dtype = "int4")
    {
        var folder = BuiltModels.TempDirectory(name);
        if (!File.Exists(Path.Combine(folder, ModelBuilder.GraphFileName)))
        {
            ModelBuilder.Build(new BuildOptions { CheckpointDirectory = checkpoint, OutputDirectory = folder, DType = dtype, Int4BlockSize = blockSize, Int4ZeroPoints = zeroPoints });
        }

        return folder;
    }

    private static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, float tolerance, string where)
    {
        Assert.Equal(expected.Length, actual.Length);
        var worst = 0f;
        for (var i = 0; i < expected.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        }

        Assert.True(worst < tolerance, $"{where}: max |int4 - fp32| logit difference {worst} >= {tolerance}");
        var (top, margin) = TopTwoMargin.Of(expected);
        if (margin > 2 * tolerance)
        {
            Assert.Equal(top, LogitMath.ArgMax(actual));
        }
    }
}
