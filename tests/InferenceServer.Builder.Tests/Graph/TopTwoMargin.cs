// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// A logit row's greedy token and how far the runner-up trails it: below the rounding of a dtype, either token may
/// rightly win. Linked into InferenceServer.GpuTests too.
/// </summary>
internal static class TopTwoMargin
{
    /// <summary>The argmax of <paramref name="logits"/> and its logit minus the largest other one.</summary>
    public static (int Top, float Margin) Of(ReadOnlySpan<float> logits)
    {
        var top = LogitMath.ArgMax(logits);
        var second = float.NegativeInfinity;
        for (var i = 0; i < logits.Length; i++)
        {
            if (i != top && logits[i] > second)
            {
                second = logits[i];
            }
        }

        return (top, logits[top] - second);
    }
}
