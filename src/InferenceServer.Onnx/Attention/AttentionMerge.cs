// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>
/// The exact merge of partial attention results over disjoint KV ranges (Flash-Decoding / Lean Attention):
/// o = sum_i exp(lse_i - lse) o_i, lse = log sum_i exp(lse_i). Handles -infinity (an empty part).
/// </summary>
internal static class AttentionMerge
{
    /// <summary>
    /// Merges (<paramref name="other"/>, <paramref name="otherLse"/>) into (<paramref name="output"/>, <paramref name="lse"/>)
    /// in place; rows x heads entries of lse, rows x heads x valueWidth of output.
    /// </summary>
    public static void MergeInto(Span<float> output, Span<float> lse, ReadOnlySpan<float> other, ReadOnlySpan<float> otherLse, int heads, int valueWidth)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(valueWidth);
        if (lse.Length % heads != 0 || otherLse.Length != lse.Length)
        {
            throw new ArgumentException($"lse has {lse.Length} and otherLse {otherLse.Length} entries; both must be the same multiple of {heads} heads.", nameof(otherLse));
        }

        var expected = (long)lse.Length * valueWidth;
        if (output.Length != expected || other.Length != expected)
        {
            throw new ArgumentException($"output has {output.Length} and other {other.Length} values; {lse.Length} row-heads of width {valueWidth} need {expected}.", nameof(other));
        }

        for (var i = 0; i < lse.Length; i++)
        {
            MergeOne(output.Slice(i * valueWidth, valueWidth), ref lse[i], other.Slice(i * valueWidth, valueWidth), otherLse[i]);
        }
    }

    /// <summary>Merges one head's partial result (<paramref name="other"/>, <paramref name="otherLse"/>) into (<paramref name="output"/>, <paramref name="lse"/>).</summary>
    internal static void MergeOne(Span<float> output, ref float lse, ReadOnlySpan<float> other, float otherLse)
    {
        if (float.IsNegativeInfinity(otherLse))
        {
            return;
        }

        if (float.IsNegativeInfinity(lse))
        {
            other.CopyTo(output);
            lse = otherLse;
            return;
        }

        var max = MathF.Max(lse, otherLse);
        var self = MathF.Exp(lse - max);
        var theirs = MathF.Exp(otherLse - max);
        var sum = self + theirs;
        var a = self / sum;
        var b = theirs / sum;
        for (var d = 0; d < output.Length; d++)
        {
            output[d] = (a * output[d]) + (b * other[d]);
        }

        lse = max + MathF.Log(sum);
    }
}
