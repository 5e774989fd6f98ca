// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Mixed steps, run in parts: one call for all the one-token rows (the decodes, batched) and one call per multi-token
/// row (a prefill, or a chunk of one; a padded graph takes them all in one call), the logits landing in the step's row
/// order.
/// <list type="bullet">
/// <item>Graphs with contiguous rows (GroupQueryAttention, the onnxruntime-genai contract; ADR 0006) must: ONNX
/// Runtime's GroupQueryAttention refuses a batch of more than one row when the rows bring several new tokens over a
/// past ("batch_size must be 1 when sequence_length &gt; 1 and past context is given"). Prefill-only steps (no past) and
/// decode-only steps run whole.</item>
/// <item>Padded graphs (Optimum's dense past) gain by it: run whole, a step with one 128-token prefill beside three
/// decodes pads every row to 128 new tokens over the longest past (four prefills' work for one), and drops the decodes'
/// bucket. In parts the decodes continue their bucket and the prefill runs over its own past only. (The engine
/// already sends decodes and prefills as two batches to this runner, which does not report
/// <see cref="IModelRunner.RunsMixedBatches"/>; this keeps the runner's cost right for any other caller.) Steps whose
/// rows all bring one token, or all several, run whole.</item>
/// </list>
/// </summary>
public sealed partial class DenseKvRunner
{
    private readonly ForwardBatch _part = new();
    private float[] _partLogits = [];
    private int[] _logitOffsets = new int[64];

    /// <summary>Steps run in parts so far (tests read it: a mixed step must not run padded whole).</summary>
    internal int StepsInParts { get; private set; }

    /// <summary>Whether <paramref name="batch"/> runs in parts (see the type's remarks).</summary>
    private bool NeedsSplit(ForwardBatch batch) =>
        batch.RowCount > 1 && batch.MaxNewTokens > 1 && (_contiguousRows ? batch.MaxPastLength > 0 : batch.MinNewTokens == 1);

    /// <summary>
    /// Runs <paramref name="batch"/> as its one-token rows together, then its multi-token rows: each alone for contiguous
    /// rows, together for a padded graph.
    /// </summary>
    private StepTiming ForwardSplit(ForwardBatch batch, Span<float> logits)
    {
        StepsInParts++;
        var rows = batch.RowCount;
        Grow(ref _logitOffsets, rows + 1);
        _logitOffsets[0] = 0;
        for (var r = 0; r < rows; r++)
        {
            _logitOffsets[r + 1] = _logitOffsets[r] + batch.LogitRows(r);
        }

        var total = default(StepTiming);
        _part.Clear();
        for (var r = 0; r < rows; r++)
        {
            if (batch.Tokens(r).Length == 1)
            {
                _part.AddRow(batch.Tokens(r), batch.PastLength(r), batch.BlockTable(r), batch.Logits(r), batch.SequenceId(r));
            }
        }

        if (_part.RowCount > 0)
        {
            total = Add(total, RunPart(logits, batch, singleTokenRows: true, row: -1));
        }

        if (!_contiguousRows)
        {
            // A padded graph takes the multi-token rows as one more call.
            _part.Clear();
            for (var r = 0; r < rows; r++)
            {
                if (batch.Tokens(r).Length > 1)
                {
                    _part.AddRow(batch.Tokens(r), batch.PastLength(r), batch.BlockTable(r), batch.Logits(r), batch.SequenceId(r));
                }
            }

            return Add(total, RunPart(logits, batch, singleTokenRows: false, row: -1));
        }

        for (var r = 0; r < rows; r++)
        {
            if (batch.Tokens(r).Length > 1)
            {
                _part.Clear();
                _part.AddRow(batch.Tokens(r), batch.PastLength(r), batch.BlockTable(r), batch.Logits(r), batch.SequenceId(r));
                total = Add(total, RunPart(logits, batch, singleTokenRows: false, row: r));
            }
        }

        return total;
    }

    /// <summary>
    /// Runs <see cref="_part"/> and copies its logit rows to where the whole batch's rows put them: the one-token rows,
    /// the multi-token rows (<paramref name="row"/> -1), or row <paramref name="row"/> alone.
    /// </summary>
    private StepTiming RunPart(Span<float> logits, ForwardBatch batch, bool singleTokenRows, int row)
    {
        var vocab = Spec.VocabularySize;
        Grow(ref _partLogits, _part.LogitRowCount * vocab);
        var timing = ForwardTimed(_part, _partLogits);
        var source = 0;
        for (var r = 0; r < batch.RowCount; r++)
        {
            var inPart = singleTokenRows ? batch.Tokens(r).Length == 1 : row < 0 ? batch.Tokens(r).Length > 1 : r == row;
            var count = batch.LogitRows(r);
            if (inPart && count > 0)
            {
                _partLogits.AsSpan(source * vocab, count * vocab).CopyTo(logits.Slice(_logitOffsets[r] * vocab, count * vocab));
                source += count;
            }
        }

        return timing;
    }

    private static StepTiming Add(StepTiming a, StepTiming b) => new(a.Gather + b.Gather, a.Run + b.Run, a.Scatter + b.Scatter);
}
