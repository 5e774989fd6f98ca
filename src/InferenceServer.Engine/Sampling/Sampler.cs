// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Requests;

namespace InferenceServer.Engine.Sampling;

/// <summary>
/// Chooses the next token from one row of (already biased, penalized and masked) logits: argmax when greedy, otherwise
/// temperature, min-p, top-k and top-p (nucleus) filtering followed by a draw from the request's own generator. Scratch buffers are reused between calls,
/// so steady-state sampling allocates nothing. Owned by the scheduler loop; not thread-safe.
/// </summary>
internal sealed class Sampler
{
    private float[] _keys = [];
    private int[] _indices = [];
    private double[] _probabilities = [];

    /// <summary>
    /// Picks a token from <paramref name="logits"/>; ids in <paramref name="banned"/> are never chosen
    /// (end-of-sequence before <c>min_tokens</c>).
    /// </summary>
    public int Sample(ReadOnlySpan<float> logits, SamplingParameters parameters, ref SeededRandom random, ReadOnlySpan<int> banned)
    {
        if (parameters.IsGreedy)
        {
            return ArgMax(logits, banned);
        }

        var vocab = logits.Length;
        EnsureCapacity(vocab);
        var inverseTemperature = 1.0 / parameters.Temperature;

        // Sort candidates by descending logit: keys are negated logits so the ascending sort puts the best first.
        var count = 0;
        for (var i = 0; i < vocab; i++)
        {
            if (IsBanned(i, banned) || float.IsNegativeInfinity(logits[i]))
            {
                continue;
            }

            _keys[count] = -logits[i];
            _indices[count] = i;
            count++;
        }

        if (count == 0)
        {
            return ArgMax(logits, []);
        }

        Array.Sort(_keys, _indices, 0, count);
        if (parameters.TopK > 0 && parameters.TopK < count)
        {
            count = parameters.TopK;
        }

        // Softmax over the survivors, in double for a stable cumulative sum. Relative to the best token (weight 1), so
        // min-p (a fraction of the best token's probability, after temperature) cuts where the weight drops below it:
        // the candidates are sorted, so min-p and top-k both keep a prefix and their order does not matter.
        var max = -_keys[0];
        var sum = 0.0;
        var minP = parameters.MinP;
        for (var i = 0; i < count; i++)
        {
            var p = Math.Exp((-_keys[i] - max) * inverseTemperature);
            if (p < minP)
            {
                count = i;
                break;
            }

            _probabilities[i] = p;
            sum += p;
        }

        if (parameters.TopP < 1.0)
        {
            var threshold = parameters.TopP * sum;
            var cumulative = 0.0;
            for (var i = 0; i < count; i++)
            {
                cumulative += _probabilities[i];
                if (cumulative >= threshold)
                {
                    count = i + 1;
                    sum = cumulative;
                    break;
                }
            }
        }

        var draw = random.NextDouble() * sum;
        var running = 0.0;
        for (var i = 0; i < count; i++)
        {
            running += _probabilities[i];
            if (draw < running)
            {
                return _indices[i];
            }
        }

        return _indices[count - 1];
    }

    /// <summary>The index of the largest logit not in <paramref name="banned"/>; the first on ties, as torch.argmax.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits, ReadOnlySpan<int> banned)
    {
        var best = -1;
        var bestValue = float.NegativeInfinity;
        for (var i = 0; i < logits.Length; i++)
        {
            var value = logits[i];
            if ((best < 0 || value > bestValue) && !IsBanned(i, banned))
            {
                best = i;
                bestValue = value;
            }
        }

        return best < 0 ? 0 : best;
    }

    private static bool IsBanned(int id, ReadOnlySpan<int> banned)
    {
        for (var i = 0; i < banned.Length; i++)
        {
            if (banned[i] == id)
            {
                return true;
            }
        }

        return false;
    }

    private void EnsureCapacity(int vocab)
    {
        if (_keys.Length < vocab)
        {
            _keys = new float[vocab];
            _indices = new int[vocab];
            _probabilities = new double[vocab];
        }
    }
}
