// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>Small reductions over one logit row, shared by the runners' callers (benchmarks, checks).</summary>
public static class LogitMath
{
    /// <summary>
    /// The index of the first maximum of <paramref name="logits"/>: what ONNX <c>ArgMax</c> returns with
    /// <c>select_last_index = 0</c> (the paged graph's <c>next_tokens</c>) and what greedy decoding picks. 0 when empty.
    /// </summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        var best = 0;
        for (var i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
            {
                best = i;
            }
        }

        return best;
    }
}
