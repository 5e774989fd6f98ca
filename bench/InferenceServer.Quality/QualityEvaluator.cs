// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Quality;

/// <summary>
/// Perplexity and greedy decoding of one served model folder, through the server's <see cref="DenseKvRunner"/> (the
/// CPU runner of dense past/present graphs) exactly as the scheduler drives it.
/// </summary>
internal sealed class QualityEvaluator : IDisposable
{
    private const int BlockSize = 16;

    private readonly OnnxDecoderModel _model;
    private readonly DenseKvRunner _runner;
    private readonly int _window;

    /// <summary>Opens <paramref name="folder"/> on the CPU with room for one sequence of <paramref name="window"/> tokens.</summary>
    public QualityEvaluator(string folder, int window)
    {
        _model = OnnxDecoderModel.Open(ModelPackage.Load(folder), new OnnxSessionOptions { Device = "cpu" });
        _window = window;
        _runner = new DenseKvRunner(_model, (window / BlockSize) + 2, BlockSize);
    }

    /// <summary>
    /// exp(mean negative log-likelihood) of <paramref name="tokens"/>, scored in consecutive windows: each window is
    /// <paramref name="bos"/> followed by up to <c>window - 1</c> tokens, one forward pass with every position's logits,
    /// and every token after the bos is scored given the window's tokens before it. Returns the perplexity and, for each
    /// scored position, the model's top token (teacher-forced greedy choice), to compare builds position by position.
    /// </summary>
    public (double Perplexity, int[] TopTokens) Perplexity(IReadOnlyList<int> tokens, int bos)
    {
        var top = new int[tokens.Count];
        var vocab = _runner.Spec.VocabularySize;
        var logits = new float[_window * vocab];
        var table = Enumerable.Range(0, (_window / BlockSize) + 1).ToArray();
        var batch = new ForwardBatch();
        var window = new int[_window];
        double nll = 0;
        var scored = 0;
        for (var start = 0; start < tokens.Count; start += _window - 1)
        {
            var length = Math.Min(_window - 1, tokens.Count - start);
            window[0] = bos;
            for (var i = 0; i < length; i++)
            {
                window[i + 1] = tokens[start + i];
            }

            batch.Clear();
            batch.AddRow(window.AsSpan(0, length + 1), 0, table, RowLogits.All);
            _runner.Forward(batch, logits);
            for (var i = 0; i < length; i++)
            {
                // Position i's logits predict window[i + 1].
                nll -= LogSoftmax(logits.AsSpan(i * vocab, vocab), window[i + 1]);
                top[scored++] = LogitMath.ArgMax(logits.AsSpan(i * vocab, vocab));
            }
        }

        return (Math.Exp(nll / scored), top);
    }

    /// <summary>The <paramref name="count"/> greedy tokens after <paramref name="prompt"/>.</summary>
    public int[] Greedy(IReadOnlyList<int> prompt, int count)
    {
        var vocab = _runner.Spec.VocabularySize;
        var logits = new float[vocab];
        var table = Enumerable.Range(0, ((prompt.Count + count) / BlockSize) + 1).ToArray();
        var batch = new ForwardBatch();
        var generated = new int[count];
        batch.AddRow(prompt.ToArray(), 0, table, wantLogits: true);
        _runner.Forward(batch, logits);
        generated[0] = LogitMath.ArgMax(logits);
        for (var step = 1; step < count; step++)
        {
            batch.Clear();
            batch.AddRow([generated[step - 1]], prompt.Count + step - 1, table, wantLogits: true);
            _runner.Forward(batch, logits);
            generated[step] = LogitMath.ArgMax(logits);
        }

        return generated;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _runner.Dispose();
        _model.Dispose();
    }

    private static double LogSoftmax(ReadOnlySpan<float> logits, int target)
    {
        var max = float.NegativeInfinity;
        foreach (var l in logits)
        {
            max = Math.Max(max, l);
        }

        double sum = 0;
        foreach (var l in logits)
        {
            sum += Math.Exp(l - max);
        }

        return logits[target] - max - Math.Log(sum);
    }
}
