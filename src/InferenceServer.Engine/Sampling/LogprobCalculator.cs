// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Requests;

namespace InferenceServer.Engine.Sampling;

/// <summary>
/// Log-probabilities of one row of raw logits: log-softmax in double precision, the chosen token's rank and the k most
/// likely tokens. One pass for the normalizer and one for the rank and top-k (an insertion into a k-long sorted run,
/// so O(vocab · k) at worst and O(vocab) in practice). Only requests that ask for logprobs pay for it, and each report
/// allocates its own result arrays because it leaves the loop's thread.
/// </summary>
internal static class LogprobCalculator
{
    /// <summary>log Σ exp(logits), computed stably: the log-softmax of token i is <c>logits[i] - LogSumExp(logits)</c>.</summary>
    public static double LogSumExp(ReadOnlySpan<float> logits)
    {
        var max = float.NegativeInfinity;
        for (var i = 0; i < logits.Length; i++)
        {
            if (logits[i] > max)
            {
                max = logits[i];
            }
        }

        if (float.IsNegativeInfinity(max))
        {
            return double.NegativeInfinity;
        }

        var sum = 0.0;
        for (var i = 0; i < logits.Length; i++)
        {
            sum += Math.Exp(logits[i] - (double)max);
        }

        return max + Math.Log(sum);
    }

    /// <summary>The report for <paramref name="token"/> under <paramref name="logits"/> with the <paramref name="k"/> most likely tokens.</summary>
    public static TokenLogprobs Report(ReadOnlySpan<float> logits, int token, int k)
    {
        var normalizer = LogSumExp(logits);
        var chosen = logits[token];
        k = Math.Min(k, logits.Length);
        var ids = k == 0 ? [] : new int[k];
        var values = k == 0 ? [] : new float[k];
        var filled = 0;
        var rank = 0;
        for (var i = 0; i < logits.Length; i++)
        {
            var value = logits[i];
            if (float.IsNaN(value))
            {
                continue;
            }

            if (value >= chosen)
            {
                rank++;
            }

            if (k == 0 || (filled == k && !(value > values[k - 1])))
            {
                continue;
            }

            // Insert keeping descending order; an equal value goes after the ones already there (lower id first).
            var at = filled == k ? k - 1 : filled++;
            while (at > 0 && value > values[at - 1])
            {
                values[at] = values[at - 1];
                ids[at] = ids[at - 1];
                at--;
            }

            values[at] = value;
            ids[at] = i;
        }

        var top = new TokenLogprob[filled];
        for (var i = 0; i < filled; i++)
        {
            top[i] = new TokenLogprob(ids[i], (float)(values[i] - normalizer));
        }

        return new TokenLogprobs(token, (float)(chosen - normalizer), Math.Max(1, rank), top);
    }
}
