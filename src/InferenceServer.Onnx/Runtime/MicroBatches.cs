// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Cuts a step of a split model into two micro-batches for overlap (ADR 0010): rows [0, r) and [r, RowCount), with r the
/// row boundary nearest to half of the step's attention work (the KV positions its query rows read, summed over rows:
/// for a row of n new tokens after p, n x (p + n)), so that the memory devices spend about as long on each half.
/// Both halves keep their rows' order, so the first half's logit rows come first. The previous step's cut is kept while
/// it stays within <see cref="KeepImbalance"/> of the whole work from the half (a steady decode, whose contexts all grow
/// by one, keeps one cut, so its half-batch shapes repeat and their tensor views are reused). Allocation-free once the
/// micro-batches have grown.
/// </summary>
internal static class MicroBatches
{
    /// <summary>How far from an even split (a fraction of the whole work) the previous step's cut may drift and be kept.</summary>
    public const double KeepImbalance = 0.125;

    /// <summary>Attention work of row <paramref name="row"/>: KV positions read by its query rows (upper bound, ignoring causality within a chunk).</summary>
    public static long Work(ForwardBatch batch, int row)
    {
        var tokens = batch.Tokens(row).Length;
        return (long)tokens * (batch.PastLength(row) + tokens);
    }

    /// <summary>
    /// The first row of the second micro-batch: <paramref name="previous"/> (the last step's cut) while its imbalance is
    /// within <see cref="KeepImbalance"/>, else the boundary where the first half's work comes closest to half of the
    /// whole (each half keeps at least one row); 0 when <paramref name="batch"/> has fewer than two rows.
    /// </summary>
    public static int SplitRow(ForwardBatch batch, int previous = 0)
    {
        if (batch.RowCount < 2)
        {
            return 0;
        }

        long total = 0;
        long beforePrevious = 0;
        for (var r = 0; r < batch.RowCount; r++)
        {
            if (r == previous)
            {
                beforePrevious = total;
            }

            total += Work(batch, r);
        }

        if (previous > 0 && previous < batch.RowCount && Math.Abs((2 * beforePrevious) - total) <= 2 * KeepImbalance * total)
        {
            return previous;
        }

        long before = 0;
        var best = 1;
        var bestGap = long.MaxValue;
        for (var r = 1; r < batch.RowCount; r++)
        {
            before += Work(batch, r - 1);
            var gap = Math.Abs((2 * before) - total);
            if (gap < bestGap)
            {
                bestGap = gap;
                best = r;
            }
        }

        return best;
    }

    /// <summary>
    /// Fills <paramref name="first"/> with rows [0, <paramref name="split"/>) of <paramref name="batch"/> and
    /// <paramref name="second"/> with the rest; both want distributions when <paramref name="batch"/> does.
    /// </summary>
    public static void Split(ForwardBatch batch, int split, ForwardBatch first, ForwardBatch second)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(split);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(split, batch.RowCount);
        first.Clear();
        second.Clear();
        first.DistributionsWanted = second.DistributionsWanted = batch.DistributionsWanted;
        for (var r = 0; r < batch.RowCount; r++)
        {
            (r < split ? first : second).AddRow(batch.Tokens(r), batch.PastLength(r), batch.BlockTable(r), batch.Logits(r), batch.SequenceId(r));
        }
    }
}
