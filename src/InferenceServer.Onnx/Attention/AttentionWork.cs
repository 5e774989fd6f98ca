// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>
/// One attention call's work: query rows grouped by sequence, reusable and pre-sized (no allocation per step once grown;
/// the arrays grow by doubling).
/// </summary>
internal sealed class AttentionWork
{
    private Sequence[] _sequences = new Sequence[16];
    private int[] _blocks = new int[256];
    private int _blockCount;

    /// <summary>Sequences added since the last <see cref="Clear"/>.</summary>
    public int SequenceCount { get; private set; }

    /// <summary>Total query rows: the end of the furthest sequence's rows (q, output and lse hold this many rows).</summary>
    public int QueryCount { get; private set; }

    /// <summary>Forgets every sequence, keeping the arrays.</summary>
    public void Clear()
    {
        SequenceCount = 0;
        QueryCount = 0;
        _blockCount = 0;
    }

    /// <summary>
    /// A sequence's query rows [<paramref name="queryOffset"/>, queryOffset + queryCount) at absolute positions
    /// <paramref name="firstQueryPosition"/> + i, attending over the KV positions this pool holds for it:
    /// <paramref name="kvCount"/> positions starting at absolute position <paramref name="kvStart"/>, stored in
    /// <paramref name="blockTable"/> (local block ids; position kvStart + j is in blockTable[j / BlockSize] at offset
    /// j % BlockSize; kvStart is a multiple of BlockSize). Causal: a query at position p sees only KV positions &lt;= p.
    /// A query that sees no position here gets output 0 and lse = -infinity.
    /// </summary>
    public void AddSequence(ReadOnlySpan<int> blockTable, int kvStart, int kvCount, int queryOffset, int queryCount, int firstQueryPosition)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(kvStart);
        ArgumentOutOfRangeException.ThrowIfNegative(kvCount);
        ArgumentOutOfRangeException.ThrowIfNegative(queryOffset);
        ArgumentOutOfRangeException.ThrowIfNegative(queryCount);
        ArgumentOutOfRangeException.ThrowIfNegative(firstQueryPosition);
        if (SequenceCount == _sequences.Length)
        {
            Array.Resize(ref _sequences, _sequences.Length * 2);
        }

        if (_blockCount + blockTable.Length > _blocks.Length)
        {
            Array.Resize(ref _blocks, Math.Max(_blocks.Length * 2, _blockCount + blockTable.Length));
        }

        blockTable.CopyTo(_blocks.AsSpan(_blockCount));
        _sequences[SequenceCount++] = new Sequence(_blockCount, blockTable.Length, kvStart, kvCount, queryOffset, queryCount, firstQueryPosition);
        _blockCount += blockTable.Length;
        QueryCount = Math.Max(QueryCount, queryOffset + queryCount);
    }

    /// <summary>The sequence added <paramref name="index"/>-th.</summary>
    internal ref readonly Sequence this[int index] => ref _sequences[index];

    /// <summary>The block table of a sequence.</summary>
    internal ReadOnlySpan<int> BlockTable(in Sequence sequence) => _blocks.AsSpan(sequence.BlockOffset, sequence.BlockLength);

    /// <summary>One sequence's entry: where its block table sits in the shared array, its KV range and its query rows.</summary>
    internal readonly record struct Sequence(int BlockOffset, int BlockLength, int KvStart, int KvCount, int QueryOffset, int QueryCount, int FirstQueryPosition);
}
