// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>
/// The exact merge of partial attention results over disjoint KV ranges (Flash-Decoding / Lean Attention):
/// o = sum_i exp(lse_i - lse) o_i, lse = log sum_i exp(lse_i). Handles -infinity (an empty part).
/// </summary>
internal static class AttentionMerge
{
    /// <summary>Merges (other, otherLse) into (output, lse) in place.</summary>
    public static void MergeInto(Span<float> output, Span<float> lse, ReadOnlySpan<float> other, ReadOnlySpan<float> otherLse, int heads, int valueWidth)
    {
        for (var i = 0; i < otherLse.Length; i++)
        {
            var a = lse[i];
            var b = otherLse[i];
            if (float.IsNegativeInfinity(b))
            {
                continue;
            }

            var o = output.Slice(i * valueWidth, valueWidth);
            var p = other.Slice(i * valueWidth, valueWidth);
            if (float.IsNegativeInfinity(a))
            {
                p.CopyTo(o);
                lse[i] = b;
                continue;
            }

            var max = Math.Max(a, b);
            var wa = MathF.Exp(a - max);
            var wb = MathF.Exp(b - max);
            var sum = wa + wb;
            for (var j = 0; j < valueWidth; j++)
            {
                o[j] = ((wa * o[j]) + (wb * p[j])) / sum;
            }

            lse[i] = max + MathF.Log(sum);
        }
    }
}
