// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>One attention call's work: query rows grouped by sequence, reusable and pre-sized (no allocation per step once grown).</summary>
internal sealed class AttentionWork
{
    private int[] _blocks = new int[64];
    private int[] _sequences = new int[16 * 6];

    /// <summary>Sequences added since <see cref="Clear"/>.</summary>
    public int SequenceCount { get; private set; }

    /// <summary>Query rows in all.</summary>
    public int QueryCount { get; private set; }

    private int BlockCountUsed { get; set; }

    /// <summary>Empties the work, keeping its buffers.</summary>
    public void Clear()
    {
        SequenceCount = 0;
        QueryCount = 0;
        BlockCountUsed = 0;
    }

    /// <summary>
    /// A sequence's query rows [queryOffset, queryOffset + queryCount) at positions firstQueryPosition + i, attending over
    /// kvCount KV positions from kvStart (a multiple of the block size) held in <paramref name="blockTable"/> (local ids).
    /// </summary>
    public void AddSequence(ReadOnlySpan<int> blockTable, int kvStart, int kvCount, int queryOffset, int queryCount, int firstQueryPosition)
    {
        if (_sequences.Length < (SequenceCount + 1) * 6)
        {
            Array.Resize(ref _sequences, _sequences.Length * 2);
        }

        if (_blocks.Length < BlockCountUsed + blockTable.Length)
        {
            Array.Resize(ref _blocks, Math.Max(_blocks.Length * 2, BlockCountUsed + blockTable.Length));
        }

        blockTable.CopyTo(_blocks.AsSpan(BlockCountUsed));
        var s = SequenceCount * 6;
        _sequences[s] = BlockCountUsed;
        _sequences[s + 1] = kvStart;
        _sequences[s + 2] = kvCount;
        _sequences[s + 3] = queryOffset;
        _sequences[s + 4] = queryCount;
        _sequences[s + 5] = firstQueryPosition;
        BlockCountUsed += blockTable.Length;
        SequenceCount++;
        QueryCount += queryCount;
    }

    /// <summary>Sequence <paramref name="index"/>'s KV start and count, query offset and count, and first query position.</summary>
    internal (int KvStart, int KvCount, int QueryOffset, int QueryCount, int FirstQueryPosition) Sequence(int index)
    {
        var s = index * 6;
        return (_sequences[s + 1], _sequences[s + 2], _sequences[s + 3], _sequences[s + 4], _sequences[s + 5]);
    }

    /// <summary>Sequence <paramref name="index"/>'s block table (local ids) for blocks of <paramref name="blockSize"/>.</summary>
    internal ReadOnlySpan<int> Blocks(int index, int blockSize)
    {
        var s = index * 6;
        return _blocks.AsSpan(_sequences[s], (_sequences[s + 2] + blockSize - 1) / blockSize);
    }
}
