// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Attention;

/// <summary>One run of <see cref="LseAttentionGraph"/>: query rows [FirstRow, FirstRow + Rows), each over <see cref="Blocks"/> blocks.</summary>
/// <param name="FirstRow">The chunk's first token row in the step.</param>
/// <param name="Rows">Token rows in the chunk.</param>
/// <param name="Blocks">Blocks per row (the chunk's most; shorter rows are padded and masked).</param>
/// <param name="BlockOffset">Where the chunk's [Rows, Blocks] block ids start in <see cref="LseAttentionPlan.RowBlocks"/>.</param>
/// <param name="BiasOffset">Where its [Rows, Blocks x block_size] bias starts in <see cref="LseAttentionPlan.KeyBias"/>.</param>
internal readonly record struct LseChunk(int FirstRow, int Rows, int Blocks, int BlockOffset, int BiasOffset);

/// <summary>
/// The host side of <see cref="LseAttentionGraph"/> for the global blocks [<see cref="FirstBlock"/>,
/// <see cref="FirstBlock"/> + <see cref="BlockCount"/>), made once per step and read by every layer: which of the step's
/// k/v rows are stored here and in which slots, and per query row the blocks here that it sees with the bias that masks
/// keys past its position. Rows are cut into chunks whose gathered keys and scores stay under a byte budget (a long
/// prefill would otherwise gather rows x context keys at once). Buffers grow by doubling; a steady step allocates nothing.
/// </summary>
internal sealed class LseAttentionPlan
{
    private readonly long _bytesPerKey;
    private readonly long _budgetBytes;
    private readonly List<LseChunk> _chunks = [];
    private long[] _appendRows = new long[64];
    private long[] _appendSlots = new long[128];
    private long[] _rowBlocks = new long[256];
    private float[] _keyBias = new float[256];
    private int[] _rowStart = new int[65];
    private int[] _entries = new int[256];
    private int[] _entryIndex = new int[256];
    private int[] _positions = new int[64];

    /// <summary>
    /// Plans for the global blocks [<paramref name="firstBlock"/>, + <paramref name="blockCount"/>) of
    /// <paramref name="blockSize"/> tokens; <paramref name="bytesPerKey"/> is what one row's one key costs the graph
    /// (gathered k and v, their fp32 copies, the scores), <paramref name="budgetBytes"/> the most a chunk may take.
    /// </summary>
    public LseAttentionPlan(int firstBlock, int blockCount, int blockSize, long bytesPerKey, long budgetBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstBlock);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytesPerKey);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(budgetBytes);
        FirstBlock = firstBlock;
        BlockCount = blockCount;
        BlockSize = blockSize;
        _bytesPerKey = bytesPerKey;
        _budgetBytes = budgetBytes;
    }

    /// <summary>The global id of the first block here.</summary>
    public int FirstBlock { get; }

    /// <summary>Blocks here.</summary>
    public int BlockCount { get; }

    /// <summary>Tokens per block.</summary>
    public int BlockSize { get; }

    /// <summary>The step's token rows.</summary>
    public int TokenCount { get; private set; }

    /// <summary>Whether the step stores or reads anything here.</summary>
    public bool HasWork { get; private set; }

    /// <summary>Step rows stored here: [A] row indices.</summary>
    public ReadOnlySpan<long> AppendRows => _appendRows.AsSpan(0, AppendCount);

    /// <summary>Their slots: [A, 2] (local block, offset in the block).</summary>
    public ReadOnlySpan<long> AppendSlots => _appendSlots.AsSpan(0, 2 * AppendCount);

    /// <summary>How many of the step's rows are stored here.</summary>
    public int AppendCount { get; private set; }

    /// <summary>The chunks' block ids, chunk after chunk.</summary>
    public ReadOnlySpan<long> RowBlocks => _rowBlocks.AsSpan(0, RowBlockCount);

    /// <summary>Entries of <see cref="RowBlocks"/>.</summary>
    public int RowBlockCount { get; private set; }

    /// <summary>The chunks' key bias, chunk after chunk.</summary>
    public ReadOnlySpan<float> KeyBias => _keyBias.AsSpan(0, KeyBiasCount);

    /// <summary>Entries of <see cref="KeyBias"/>.</summary>
    public int KeyBiasCount { get; private set; }

    /// <summary>The chunks, in row order; together they cover every row of the step.</summary>
    public IReadOnlyList<LseChunk> Chunks => _chunks;

    /// <summary>Reads <paramref name="batch"/>'s block tables: the slots of its new tokens here and each row's visible blocks here.</summary>
    public void Plan(ForwardBatch batch)
    {
        var bs = BlockSize;
        var tokens = batch.TokenCount;
        TokenCount = tokens;
        AppendCount = 0;
        HasWork = false;
        Grow(ref _rowStart, tokens + 1);
        Grow(ref _positions, tokens);
        var entries = 0;
        var row = 0;
        for (var r = 0; r < batch.RowCount; r++)
        {
            var past = batch.PastLength(r);
            var count = batch.Tokens(r).Length;
            var table = batch.BlockTable(r);
            for (var i = 0; i < count; i++, row++)
            {
                var position = past + i;
                _positions[row] = position;
                _rowStart[row] = entries;
                var local = table[position / bs] - FirstBlock;
                if ((uint)local < (uint)BlockCount)
                {
                    Grow(ref _appendRows, AppendCount + 1);
                    Grow(ref _appendSlots, 2 * (AppendCount + 1));
                    _appendRows[AppendCount] = row;
                    _appendSlots[2 * AppendCount] = local;
                    _appendSlots[(2 * AppendCount) + 1] = position % bs;
                    AppendCount++;
                }

                // The blocks this row sees (its table up to its own position's block) that are here.
                var visible = (position / bs) + 1;
                Grow(ref _entries, entries + visible);
                Grow(ref _entryIndex, entries + visible);
                for (var b = 0; b < visible; b++)
                {
                    var id = table[b] - FirstBlock;
                    if ((uint)id < (uint)BlockCount)
                    {
                        _entries[entries] = id;
                        _entryIndex[entries++] = b;
                    }
                }
            }
        }

        _rowStart[tokens] = entries;
        HasWork = AppendCount > 0 || entries > 0;
        Chunk(tokens);
    }

    private void Chunk(int tokens)
    {
        var bs = BlockSize;
        _chunks.Clear();
        RowBlockCount = 0;
        KeyBiasCount = 0;
        var first = 0;
        while (first < tokens)
        {
            // Grow the chunk while rows x widest x block_size keys stay within the budget (one row at least).
            var widest = Math.Max(1, Blocks(first));
            var rows = 1;
            while (first + rows < tokens)
            {
                var wider = Math.Max(widest, Blocks(first + rows));
                if ((long)(rows + 1) * wider * bs * _bytesPerKey > _budgetBytes)
                {
                    break;
                }

                widest = wider;
                rows++;
            }

            var chunk = new LseChunk(first, rows, widest, RowBlockCount, KeyBiasCount);
            Grow(ref _rowBlocks, RowBlockCount + (rows * widest));
            Grow(ref _keyBias, KeyBiasCount + (rows * widest * bs));
            for (var t = first; t < first + rows; t++)
            {
                var blocks = _rowBlocks.AsSpan(RowBlockCount + ((t - first) * widest), widest);
                var bias = _keyBias.AsSpan(KeyBiasCount + ((t - first) * widest * bs), widest * bs);
                blocks.Clear();
                bias.Fill(LseAttentionGraph.Masked);
                var n = Blocks(t);
                for (var e = 0; e < n; e++)
                {
                    var entry = _rowStart[t] + e;
                    blocks[e] = _entries[entry];

                    // Key o of table block b sits at position b x bs + o: seen when at or before the row's own position.
                    var seen = Math.Min(bs, _positions[t] - (_entryIndex[entry] * bs) + 1);
                    bias.Slice(e * bs, seen).Clear();
                }
            }

            RowBlockCount += rows * widest;
            KeyBiasCount += rows * widest * bs;
            _chunks.Add(chunk);
            first += rows;
        }
    }

    private int Blocks(int row) => _rowStart[row + 1] - _rowStart[row];

    private static void Grow<T>(ref T[] array, int length)
    {
        if (length > array.Length)
        {
            Array.Resize(ref array, Math.Max(length, array.Length * 2));
        }
    }
}
