using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Tests.Attention;

/// <summary><see cref="AttentionMerge"/>: the log-sum-exp merge of two partial results.</summary>
public sealed class AttentionMergeTests
{
    [Fact]
    public void MergeInto_TwoParts_EqualsSoftmaxOverBoth()
    {
        // Part 1: scores {0, ln 3} over values {1, 5} -> weights 1/4, 3/4; part 2: score {ln 4} over value {9}.
        float[] output = [(1f * 0.25f) + (5f * 0.75f)];
        float[] lse = [MathF.Log(4f)];
        AttentionMerge.MergeInto(output, lse, [9f], [MathF.Log(4f)], heads: 1, valueWidth: 1);
        // Together: exp scores {1, 3, 4} over {1, 5, 9}.
        Assert.Equal((1f + 15f + 36f) / 8f, output[0], 5);
        Assert.Equal(MathF.Log(8f), lse[0], 5);
    }

    [Fact]
    public void MergeInto_EmptyParts_KeepTheOther()
    {
        float[] output = [1f, 2f, 0f, 0f];
        float[] lse = [0.5f, float.NegativeInfinity];
        AttentionMerge.MergeInto(output, lse, [7f, 7f, 3f, 4f], [float.NegativeInfinity, 1.5f], heads: 2, valueWidth: 2);
        Assert.Equal([1f, 2f, 3f, 4f], output);
        Assert.Equal([0.5f, 1.5f], lse);

        float[] none = [0f];
        float[] noneLse = [float.NegativeInfinity];
        AttentionMerge.MergeInto(none, noneLse, [0f], [float.NegativeInfinity], 1, 1);
        Assert.Equal(float.NegativeInfinity, noneLse[0]);
        Assert.Equal(0f, none[0]);
    }

    [Fact]
    public void MergeInto_MismatchedSpans_Throw()
    {
        Assert.Throws<ArgumentException>(() => AttentionMerge.MergeInto(new float[4], new float[2], new float[3], new float[2], 2, 2));
        Assert.Throws<ArgumentException>(() => AttentionMerge.MergeInto(new float[4], new float[2], new float[4], new float[1], 2, 2));
    }
}
