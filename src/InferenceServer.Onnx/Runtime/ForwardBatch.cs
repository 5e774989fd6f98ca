// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// One model step's work: per row (sequence), the new tokens to run, how many tokens of it are already cached,
/// its block table, and which positions' logits come back (<see cref="RowLogits"/>: none, the last, or all). The arrays are reused between steps
/// and grow by doubling, so that a steady-state step allocates nothing.
/// </summary>
public sealed class ForwardBatch
{
    private int[] _tokens = new int[256];
    private int[] _tokenOffsets = new int[17];
    private int[] _pastLengths = new int[16];
    private int[] _blocks = new int[256];
    private int[] _blockOffsets = new int[17];
    private RowLogits[] _logits = new RowLogits[16];
    private long[] _sequenceIds = new long[16];
    private int[] _argmax = new int[16];

    /// <summary>Rows in this step.</summary>
    internal int RowCount { get; private set; }

    /// <summary>
    /// Vocabulary-sized logit rows the step returns: one per row that wants its last position, one per new token for
    /// rows that want all positions.
    /// </summary>
    internal int LogitRowCount { get; private set; }

    /// <summary>New tokens across all rows.</summary>
    internal int TokenCount => _tokenOffsets[RowCount];

    /// <summary>Largest number of new tokens in one row.</summary>
    internal int MaxNewTokens { get; private set; }

    /// <summary>Smallest number of new tokens in one row (0 for an empty batch).</summary>
    internal int MinNewTokens { get; private set; }

    /// <summary>Largest number of cached tokens in one row.</summary>
    internal int MaxPastLength { get; private set; }

    /// <summary>
    /// Whether the caller needs the logit rows' distributions. False when every row that returns logits only needs its
    /// most likely token (plain greedy decoding): a runner that <see cref="IModelRunner.ReportsArgmax"/> then fills
    /// <see cref="Argmax"/> and may leave the logits where they were computed. Reset to true by <see cref="Clear"/>.
    /// </summary>
    public bool DistributionsWanted { get; set; } = true;

    /// <summary>
    /// The argmax (first maximum) of each logit row, in logit-row order, filled by runners that
    /// <see cref="IModelRunner.ReportsArgmax"/>.
    /// </summary>
    public Span<int> Argmax
    {
        get
        {
            Grow(ref _argmax, LogitRowCount);
            return _argmax.AsSpan(0, LogitRowCount);
        }
    }

    /// <summary>Fills <see cref="Argmax"/> from a graph's <c>next_tokens</c> (int64, one per logit row; any more are padding).</summary>
    internal void SetArgmax(ReadOnlySpan<long> nextTokens) => SetArgmax(0, nextTokens[..LogitRowCount]);

    /// <summary>Fills <see cref="Argmax"/> from logit row <paramref name="first"/> on with <paramref name="rows"/> (a micro-batch's <c>next_tokens</c>).</summary>
    internal void SetArgmax(int first, ReadOnlySpan<long> rows)
    {
        var argmax = Argmax.Slice(first, rows.Length);
        for (var i = 0; i < argmax.Length; i++)
        {
            argmax[i] = (int)rows[i];
        }
    }

    /// <summary>Empties the batch, keeping its buffers.</summary>
    public void Clear()
    {
        DistributionsWanted = true;
        RowCount = 0;
        LogitRowCount = 0;
        MaxNewTokens = 0;
        MinNewTokens = 0;
        MaxPastLength = 0;
        _tokenOffsets[0] = 0;
        _blockOffsets[0] = 0;
    }

    /// <summary>
    /// Adds a row: run <paramref name="tokens"/> at positions <paramref name="pastLength"/>.., whose KV (past and new) lives
    /// in <paramref name="blockTable"/>. <paramref name="sequenceId"/> identifies the sequence across steps (unique while it
    /// lives; -1 when unknown), which lets a runner keep per-batch state when the same sequences come back.
    /// </summary>
    public void AddRow(ReadOnlySpan<int> tokens, int pastLength, ReadOnlySpan<int> blockTable, bool wantLogits, long sequenceId = -1)
        => AddRow(tokens, pastLength, blockTable, wantLogits ? RowLogits.Last : RowLogits.None, sequenceId);

    /// <summary>
    /// Adds new tokens <c>[start, end)</c> of <paramref name="source"/>'s row <paramref name="row"/> as a row of their own
    /// (a piece of a row run in several calls): past the row's past plus <paramref name="start"/>, over
    /// <paramref name="blockTable"/>, with the logits that piece owes: every position's for <see cref="RowLogits.All"/>,
    /// the last for <see cref="RowLogits.Last"/> only in the piece that ends the row, else none.
    /// </summary>
    internal void AddPiece(ForwardBatch source, int row, int start, int end, ReadOnlySpan<int> blockTable)
    {
        var tokens = source.Tokens(row);
        var logits = source.Logits(row) switch
        {
            RowLogits.All => RowLogits.All,
            RowLogits.Last when end == tokens.Length => RowLogits.Last,
            _ => RowLogits.None,
        };
        AddRow(tokens[start..end], source.PastLength(row) + start, blockTable, logits, source.SequenceId(row));
    }

    /// <summary>
    /// Adds a row as <see cref="AddRow(ReadOnlySpan{int}, int, ReadOnlySpan{int}, bool, long)"/> does, with
    /// <paramref name="logits"/> choosing which of its positions return logits.
    /// </summary>
    public void AddRow(ReadOnlySpan<int> tokens, int pastLength, ReadOnlySpan<int> blockTable, RowLogits logits, long sequenceId = -1)
    {
        if (tokens.IsEmpty)
        {
            throw new ArgumentException("A row needs at least one new token.", nameof(tokens));
        }

        var row = RowCount;
        EnsureRows(row + 1);
        var tokenStart = _tokenOffsets[row];
        Grow(ref _tokens, tokenStart + tokens.Length);
        tokens.CopyTo(_tokens.AsSpan(tokenStart));
        _tokenOffsets[row + 1] = tokenStart + tokens.Length;

        var blockStart = _blockOffsets[row];
        Grow(ref _blocks, blockStart + blockTable.Length);
        blockTable.CopyTo(_blocks.AsSpan(blockStart));
        _blockOffsets[row + 1] = blockStart + blockTable.Length;

        _pastLengths[row] = pastLength;
        _logits[row] = logits;
        _sequenceIds[row] = sequenceId;
        RowCount = row + 1;
        LogitRowCount += logits switch
        {
            RowLogits.Last => 1,
            RowLogits.All => tokens.Length,
            _ => 0,
        };

        MaxNewTokens = Math.Max(MaxNewTokens, tokens.Length);
        MinNewTokens = row == 0 ? tokens.Length : Math.Min(MinNewTokens, tokens.Length);
        MaxPastLength = Math.Max(MaxPastLength, pastLength);
    }

    /// <summary>
    /// Writes, for each logit row in order, the index of its token among the batch's packed new tokens (a packed graph's
    /// <c>logits_indices</c>): a <see cref="RowLogits.Last"/> row's last token, each token of a <see cref="RowLogits.All"/> row.
    /// </summary>
    internal void WriteLogitIndices(Span<long> indices)
    {
        var logitRow = 0;
        for (var r = 0; r < RowCount; r++)
        {
            var start = _tokenOffsets[r];
            var end = _tokenOffsets[r + 1];
            switch (_logits[r])
            {
                case RowLogits.Last:
                    indices[logitRow++] = end - 1;
                    break;
                case RowLogits.All:
                    for (var t = start; t < end; t++)
                    {
                        indices[logitRow++] = t;
                    }

                    break;
            }
        }
    }

    /// <summary>The new tokens of <paramref name="row"/>.</summary>
    public ReadOnlySpan<int> Tokens(int row) => _tokens.AsSpan(_tokenOffsets[row], _tokenOffsets[row + 1] - _tokenOffsets[row]);

    /// <summary>The block table of <paramref name="row"/>.</summary>
    internal ReadOnlySpan<int> BlockTable(int row) => _blocks.AsSpan(_blockOffsets[row], _blockOffsets[row + 1] - _blockOffsets[row]);

    /// <summary>Tokens of <paramref name="row"/> already in the cache.</summary>
    internal int PastLength(int row) => _pastLengths[row];

    /// <summary>Whether <paramref name="row"/> returns any logits.</summary>
    internal bool WantsLogits(int row) => _logits[row] != RowLogits.None;

    /// <summary>Which positions of <paramref name="row"/> return logits.</summary>
    internal RowLogits Logits(int row) => _logits[row];

    /// <summary>Logit rows <paramref name="row"/> returns: 0, 1, or its new-token count.</summary>
    internal int LogitRows(int row) => _logits[row] switch
    {
        RowLogits.Last => 1,
        RowLogits.All => _tokenOffsets[row + 1] - _tokenOffsets[row],
        _ => 0,
    };

    /// <summary>The sequence of <paramref name="row"/>, or -1.</summary>
    internal long SequenceId(int row) => _sequenceIds[row];

    private void EnsureRows(int rows)
    {
        if (rows + 1 > _tokenOffsets.Length)
        {
            var size = _tokenOffsets.Length * 2;
            Array.Resize(ref _tokenOffsets, size);
            Array.Resize(ref _blockOffsets, size);
            Array.Resize(ref _pastLengths, size);
            Array.Resize(ref _logits, size);
            Array.Resize(ref _sequenceIds, size);
        }
    }

    private static void Grow(ref int[] array, int length)
    {
        if (length > array.Length)
        {
            Array.Resize(ref array, Math.Max(length, array.Length * 2));
        }
    }
}
