// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The logit budget of one call. A dense graph (Optimum's contract) returns the logits of every new position of every
/// row, padded: rows x the step's most new tokens x the vocabulary, in fp32 on the host. For a large vocabulary that
/// outgrows what a step may hold: 55 prompts of 128 tokens over DeepSeek-V2's 102,400 tokens are 2.9 GB, more than the
/// 2 GiB ONNX Runtime's C# API can view as one span (the H100 run of 2026-12-07 failed every request of that step with
/// an <see cref="ArgumentOutOfRangeException"/>). A step whose logits would exceed <see cref="MaxStepLogitFloats"/>
/// runs as consecutive groups of rows that fit, and a row whose own new tokens do not fit runs alone in chunks of
/// tokens (each chunk's KV is in the pages before the next runs; only the last chunk returns a <see cref="RowLogits.Last"/>
/// row's logits). The logit rows land in the step's order, so the caller sees one step.
/// </summary>
public sealed partial class DenseKvRunner
{
    private readonly ForwardBatch _budgetPart = new();
    private float[] _budgetLogits = [];

    /// <summary>
    /// The most logit floats one call of the graph may return (default 2^28: 1 GiB). Tests lower it to run the grouping
    /// on a small vocabulary.
    /// </summary>
    internal long MaxStepLogitFloats { get; set; } = 1L << 28;

    /// <summary>Steps run as several calls for the logit budget so far (tests read it).</summary>
    internal int StepsOverLogitBudget { get; private set; }

    /// <summary>Whether <paramref name="batch"/>'s padded logits exceed <see cref="MaxStepLogitFloats"/>.</summary>
    private bool ExceedsLogitBudget(ForwardBatch batch) =>
        (long)batch.RowCount * batch.MaxNewTokens * Spec.VocabularySize > MaxStepLogitFloats;

    /// <summary>Runs <paramref name="batch"/> as calls that each stay within <see cref="MaxStepLogitFloats"/>.</summary>
    private StepTiming ForwardWithinLogitBudget(ForwardBatch batch, Span<float> logits)
    {
        StepsOverLogitBudget++;
        var budgetTokens = (int)Math.Clamp(MaxStepLogitFloats / Spec.VocabularySize, 1, int.MaxValue);
        var total = default(StepTiming);
        var logitRow = 0;
        var r = 0;
        while (r < batch.RowCount)
        {
            var tokens = batch.Tokens(r);
            if (tokens.Length > budgetTokens)
            {
                for (var start = 0; start < tokens.Length; start += budgetTokens)
                {
                    _budgetPart.Clear();
                    _budgetPart.AddPiece(batch, r, start, Math.Min(tokens.Length, start + budgetTokens), batch.BlockTable(r));
                    total = Add(total, RunBudgetPart(logits, ref logitRow));
                }

                r++;
                continue;
            }

            _budgetPart.Clear();
            var widest = 0;
            while (r < batch.RowCount)
            {
                var length = batch.Tokens(r).Length;
                if (length > budgetTokens || (long)(_budgetPart.RowCount + 1) * Math.Max(widest, length) > budgetTokens)
                {
                    break;
                }

                _budgetPart.AddRow(batch.Tokens(r), batch.PastLength(r), batch.BlockTable(r), batch.Logits(r), batch.SequenceId(r));
                widest = Math.Max(widest, length);
                r++;
            }

            total = Add(total, RunBudgetPart(logits, ref logitRow));
        }

        return total;
    }

    /// <summary>Runs <see cref="_budgetPart"/> and appends its logit rows to <paramref name="logits"/> at <paramref name="logitRow"/>.</summary>
    private StepTiming RunBudgetPart(Span<float> logits, ref int logitRow)
    {
        var vocab = Spec.VocabularySize;
        var count = _budgetPart.LogitRowCount;
        Grow(ref _budgetLogits, count * vocab);
        var timing = ForwardTimed(_budgetPart, _budgetLogits);
        _budgetLogits.AsSpan(0, count * vocab).CopyTo(logits.Slice(logitRow * vocab, count * vocab));
        logitRow += count;
        return timing;
    }
}
