// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// How a step of a graph with padded attention (the paged MLA graph of ADR 0008) is cut into model calls so that no call's
/// attention scores outgrow a budget. That graph pads every row of a call to the call's most new tokens and scores each
/// query head of each place against all of its row's gathered keys: <c>rows x max_new x heads x keys</c> elements per
/// layer (keys = the call's widest block table x block size). One call for a whole mixed step pays that for every decode
/// row padded to the longest prompt chunk, and a long prompt alone needs <c>tokens x heads x keys</c>: 4,000 tokens of
/// the 32-head dense MLA 1B model asked ONNX Runtime for 9.3 GB and failed (bench/results/gpu-2026-12-07-h100-run6.md).
/// <para>
/// When the whole step's scores fit <see cref="ScoreBudgetBytes"/> it stays one call, unless the padding alone (the
/// places beyond the step's tokens) would score more than <see cref="PaddingBudgetBytes"/>: that padding is work too,
/// and at concurrency 256 it can dominate the step. A mixed step of one 128-token prompt beside 255 decodes over 256
/// keys pads to 32,768 places for 383 tokens: 32,385 wasted places x 32 heads x 256 keys = 265 M score elements a layer
/// (506 MiB in fp16; the whole step's 512 MiB is just within the score budget), and each element costs rank + rope +
/// rank = 576 multiply-adds in the score and output products, ~300 GFLOP a layer, ~5 TFLOP a step of the 16-layer dense
/// MLA 1B model: milliseconds of an H100 that one more call (its weights read again, ~1 ms) saves. On the H100
/// (bench/results/gpu-2026-12-07-h100-run7.md) that model ran concurrency 256 at 0.44x the GQA model's throughput, its
/// TPOT p50 2.5x.
/// </para>
/// <para>
/// A step that is cut runs its decode rows (one token, last logits) first, as one call (replayed as a CUDA graph where it
/// fits), then the other rows longest first, grouped while a group's padded scores fit both budgets; a row whose own
/// scores do not fit runs alone in chunks of <see cref="ChunkTokens"/> tokens, each over only the blocks it has reached.
/// Rows' results are the same whichever way they are cut (a row attends to its own keys only; chunks write their keys
/// before the next chunk reads them).
/// </para>
/// </summary>
internal static class PaddedAttentionPlan
{
    /// <summary>Bytes of one call's attention scores, per layer, that a step is cut to stay under: 512 MiB.</summary>
    public const long ScoreBudgetBytes = 512L << 20;

    /// <summary>
    /// Bytes of padded (wasted) scores per layer above which a step is cut although its scores fit <see cref="ScoreBudgetBytes"/>: 64 MiB, 33.5 M elements of 576 multiply-adds, ~39 GFLOP a layer (0.6
    /// TFLOP over the dense MLA 1B shape's 16 layers), about what the extra call costs.
    /// </summary>
    public const long PaddingBudgetBytes = 64L << 20;

    /// <summary>One call of a cut step: rows <c>Order[First..First + Count]</c>; with <paramref name="Chunk"/> above 0 its one row runs in chunks of that many tokens.</summary>
    internal readonly record struct Group(int First, int Count, int Chunk);

    /// <summary>Elements of the scores of a call of <paramref name="rows"/> rows padded to <paramref name="maxNew"/> places each, against <paramref name="keys"/> keys, times <paramref name="heads"/> and <paramref name="elementBytes"/>.</summary>
    public static long ScoreBytes(int rows, int maxNew, int heads, int keys, int elementBytes) =>
        (long)rows * maxNew * heads * keys * elementBytes;

    /// <summary>
    /// Tokens per chunk of a row whose keys are <paramref name="keys"/> wide: as many as keep its scores within
    /// <paramref name="budget"/>, in whole blocks of <paramref name="blockSize"/> when that leaves at least one, else at least 1.
    /// </summary>
    public static int ChunkTokens(int keys, int heads, int elementBytes, int blockSize, long budget)
    {
        var tokens = budget / Math.Max(1L, (long)heads * keys * elementBytes);
        var whole = tokens / blockSize * blockSize;
        return (int)Math.Clamp(whole > 0 ? whole : tokens, 1, int.MaxValue);
    }

    /// <summary>
    /// Cuts <paramref name="batch"/> for a graph of <paramref name="heads"/> query heads: false (and nothing written) when
    /// the whole step fits <paramref name="budget"/> as one call and its padded places score at most
    /// <paramref name="paddingBudget"/>; otherwise true with <paramref name="order"/> holding row indices
    /// (decode rows first) and <paramref name="groups"/> the calls over them, in the order they run.
    /// </summary>
    public static bool Cut(ForwardBatch batch, int blockSize, int heads, int elementBytes, long budget, List<int> order, List<Group> groups, long paddingBudget = PaddingBudgetBytes)
    {
        ArgumentNullException.ThrowIfNull(batch);
        order.Clear();
        groups.Clear();
        var rows = batch.RowCount;
        var widest = 0;
        for (var r = 0; r < rows; r++)
        {
            widest = Math.Max(widest, batch.BlockTable(r).Length);
        }

        if (rows == 0 || (ScoreBytes(rows, batch.MaxNewTokens, heads, widest * blockSize, elementBytes) <= budget && !PaddingOutgrows(batch, heads, widest * blockSize, elementBytes, paddingBudget)))
        {
            return false;
        }

        // Decode rows first (grouped under the budget too: many long contexts can outgrow it at one place each).
        AddGroups(batch, blockSize, heads, elementBytes, budget, paddingBudget, order, groups, decodes: true);
        AddGroups(batch, blockSize, heads, elementBytes, budget, paddingBudget, order, groups, decodes: false);
        return true;
    }

    /// <summary>
    /// Whether <paramref name="batch"/>'s padded places (rows x the most new tokens, less the tokens) score more than
    /// <paramref name="paddingBudget"/> bytes against <paramref name="keys"/> keys.
    /// </summary>
    private static bool PaddingOutgrows(ForwardBatch batch, int heads, int keys, int elementBytes, long paddingBudget) =>
        PaddingBytes(batch.RowCount, batch.MaxNewTokens, batch.TokenCount, heads, keys, elementBytes) > paddingBudget;

    /// <summary>Bytes of scores of the padding places of a call of <paramref name="rows"/> rows padded to <paramref name="maxNew"/> places holding <paramref name="tokens"/> tokens.</summary>
    private static long PaddingBytes(int rows, int maxNew, long tokens, int heads, int keys, int elementBytes) =>
        (((long)rows * maxNew) - tokens) * heads * keys * elementBytes;

    /// <summary>Whether row <paramref name="row"/> is a decode row: one token, its next token wanted.</summary>
    public static bool IsDecode(ForwardBatch batch, int row) => batch.Tokens(row).Length == 1 && batch.Logits(row) == RowLogits.Last;

    /// <summary>
    /// Appends the decode rows (or the others) to <paramref name="order"/> and their calls to <paramref name="groups"/>:
    /// the other rows longest first (so that rows of like length share a call), a call closed when one more row would
    /// take its scores past <paramref name="budget"/> or its padding past <paramref name="paddingBudget"/>; a row too
    /// long for the budget alone runs by itself in chunks.
    /// </summary>
    private static void AddGroups(ForwardBatch batch, int blockSize, int heads, int elementBytes, long budget, long paddingBudget, List<int> order, List<Group> groups, bool decodes)
    {
        var first = order.Count;
        for (var r = 0; r < batch.RowCount; r++)
        {
            if (IsDecode(batch, r) == decodes)
            {
                order.Add(r);
            }
        }

        if (!decodes)
        {
            LongestFirst(batch, order, first);
        }

        var maxNew = 0;
        var widest = 0;
        long tokenSum = 0;
        for (var i = first; i < order.Count; i++)
        {
            var r = order[i];
            var tokens = batch.Tokens(r).Length;
            var keys = batch.BlockTable(r).Length * blockSize;
            var count = i - first;
            var grownNew = Math.Max(maxNew, tokens);
            var grownKeys = Math.Max(widest, keys);
            if (count > 0 && (ScoreBytes(count + 1, grownNew, heads, grownKeys, elementBytes) > budget
                || PaddingBytes(count + 1, grownNew, tokenSum + tokens, heads, grownKeys, elementBytes) > paddingBudget))
            {
                groups.Add(new Group(first, count, 0));
                first = i;
                maxNew = 0;
                widest = 0;
                tokenSum = 0;
            }

            if (ScoreBytes(1, tokens, heads, keys, elementBytes) > budget)
            {
                // Too much even alone: this row runs by itself, in chunks.
                groups.Add(new Group(first, 1, ChunkTokens(keys, heads, elementBytes, blockSize, budget)));
                first = i + 1;
                continue;
            }

            maxNew = Math.Max(maxNew, tokens);
            widest = Math.Max(widest, keys);
            tokenSum += tokens;
        }

        if (order.Count > first)
        {
            groups.Add(new Group(first, order.Count - first, 0));
        }
    }

    /// <summary>Sorts <paramref name="order"/> from <paramref name="first"/> on by new tokens, most first, then by row (insertion sort: no allocation; a step has at most a few hundred rows).</summary>
    private static void LongestFirst(ForwardBatch batch, List<int> order, int first)
    {
        for (var i = first + 1; i < order.Count; i++)
        {
            var row = order[i];
            var tokens = batch.Tokens(row).Length;
            var j = i - 1;
            while (j >= first && (batch.Tokens(order[j]).Length < tokens || (batch.Tokens(order[j]).Length == tokens && order[j] > row)))
            {
                order[j + 1] = order[j];
                j--;
            }

            order[j + 1] = row;
        }
    }
}
