// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers;
using InferenceServer.Engine.Requests;

namespace InferenceServer.Engine.Sampling;

/// <summary>
/// One sequence's token counts for the penalties: how often each id occurs in the output, whether it occurs in the
/// prompt or the output, and the list of distinct ids seen, so that applying the penalties touches only those ids.
/// The vocabulary-sized arrays are rented once per sequence (only for requests with a penalty on) and returned by
/// <see cref="Dispose"/>; adding a token allocates nothing in steady state.
/// </summary>
internal sealed class PenaltyCounts : IDisposable
{
    private readonly int _vocabularySize;
    private int[] _outputCounts;
    private bool[] _seen;
    private int[] _distinct;
    private int _distinctCount;

    /// <summary>Counts <paramref name="tokens"/>: the first <paramref name="promptLength"/> are the prompt, the rest output.</summary>
    public PenaltyCounts(int vocabularySize, ReadOnlySpan<int> tokens, int promptLength, int capacity)
    {
        _vocabularySize = vocabularySize;
        _outputCounts = ArrayPool<int>.Shared.Rent(vocabularySize);
        _seen = ArrayPool<bool>.Shared.Rent(vocabularySize);
        Array.Clear(_outputCounts, 0, vocabularySize);
        Array.Clear(_seen, 0, vocabularySize);
        _distinct = new int[Math.Min(Math.Max(capacity, 16), vocabularySize)];
        for (var i = 0; i < tokens.Length; i++)
        {
            Add(tokens[i], output: i >= promptLength);
        }
    }

    /// <summary>Distinct ids in the prompt and output so far.</summary>
    public int DistinctCount => _distinctCount;

    /// <summary>Times <paramref name="token"/> occurs in the output.</summary>
    public int OutputCount(int token) => _outputCounts[token];

    /// <summary>Counts a generated token.</summary>
    public void AddOutput(int token) => Add(token, output: true);

    /// <summary>
    /// Applies, in vLLM's order, the repetition penalty (prompt and output tokens: positive logits divided by it,
    /// others multiplied), then the frequency penalty (times the output count) and the presence penalty (once per
    /// token in the output), to <paramref name="logits"/> in place.
    /// </summary>
    public void Apply(Span<float> logits, SamplingParameters parameters)
    {
        var repetition = (float)parameters.RepetitionPenalty;
        var frequency = (float)parameters.FrequencyPenalty;
        var presence = (float)parameters.PresencePenalty;
        for (var i = 0; i < _distinctCount; i++)
        {
            var id = _distinct[i];
            var logit = logits[id];
            if (repetition != 1f)
            {
                logit = logit > 0 ? logit / repetition : logit * repetition;
            }

            var count = _outputCounts[id];
            if (count > 0)
            {
                logit -= frequency * count;
                logit -= presence;
            }

            logits[id] = logit;
        }
    }

    /// <summary>Returns the rented arrays; the instance must not be used afterwards.</summary>
    public void Dispose()
    {
        if (_outputCounts.Length > 0)
        {
            ArrayPool<int>.Shared.Return(_outputCounts);
            ArrayPool<bool>.Shared.Return(_seen);
            _outputCounts = [];
            _seen = [];
        }
    }

    private void Add(int token, bool output)
    {
        // Ids outside the vocabulary (a prompt the host let through) cannot have a logit to penalize.
        if ((uint)token >= (uint)_vocabularySize)
        {
            return;
        }

        if (!_seen[token])
        {
            _seen[token] = true;
            if (_distinctCount == _distinct.Length)
            {
                Array.Resize(ref _distinct, Math.Min(_vocabularySize, _distinct.Length * 2));
            }

            _distinct[_distinctCount++] = token;
        }

        if (output)
        {
            _outputCounts[token]++;
        }
    }
}
