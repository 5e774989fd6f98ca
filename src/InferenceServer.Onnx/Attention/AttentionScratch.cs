// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// One attention thread's working memory, in aligned native memory: the work item's scaled queries, accumulators,
/// running max and sum, one block's scores, and one block's keys and values converted to fp32. Grown (by the calling
/// thread, before a fork) and never shrunk, so the workers never allocate.
/// </summary>
internal sealed unsafe class AttentionScratch : IDisposable
{
    private void* _memory;
    private long _capacity;

    /// <summary>Scaled query vectors, [vectors, keyWidth].</summary>
    public float* Queries { get; private set; }

    /// <summary>Output accumulators, [vectors, valueWidth].</summary>
    public float* Accumulators { get; private set; }

    /// <summary>Running max of each vector's scores.</summary>
    public float* Max { get; private set; }

    /// <summary>Running sum of each vector's exp(score - max).</summary>
    public float* Sum { get; private set; }

    /// <summary>One block's scores (then weights), [vectors, blockSize].</summary>
    public float* Scores { get; private set; }

    /// <summary>One block's keys in fp32, [blockSize, keyWidth].</summary>
    public float* Keys { get; private set; }

    /// <summary>One block's values in fp32, [blockSize, valueWidth].</summary>
    public float* Values { get; private set; }

    /// <summary>Each vector's visible KV end (relative index), then its row count in the current block.</summary>
    public int* Visible { get; private set; }

    /// <summary>Each vector's count of visible rows in the current block.</summary>
    public int* Counts { get; private set; }

    /// <summary>Makes room for <paramref name="vectors"/> query vectors of the given widths and block size.</summary>
    public void Ensure(int vectors, int keyWidth, int valueWidth, int blockSize)
    {
        var queries = Round((long)vectors * keyWidth);
        var accumulators = Round((long)vectors * valueWidth);
        var perVector = Round(vectors);
        var scores = Round((long)vectors * blockSize);
        var keys = Round((long)blockSize * keyWidth);
        var values = Round((long)blockSize * valueWidth);
        var total = queries + accumulators + (4 * perVector) + scores + keys + values;
        if (total > _capacity)
        {
            NativeMemory.AlignedFree(_memory);
            _memory = null;
            _memory = NativeMemory.AlignedAlloc((nuint)(total * sizeof(float)), 64);
            _capacity = total;
        }

        var next = (float*)_memory;
        Queries = next;
        next += queries;
        Accumulators = next;
        next += accumulators;
        Max = next;
        next += perVector;
        Sum = next;
        next += perVector;
        Visible = (int*)next;
        next += perVector;
        Counts = (int*)next;
        next += perVector;
        Scores = next;
        next += scores;
        Keys = next;
        next += keys;
        Values = next;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        NativeMemory.AlignedFree(_memory);
        _memory = null;
        _capacity = 0;
    }

    /// <summary>Rounds a float count up to whole 64-byte lines.</summary>
    private static long Round(long floats) => (floats + 15) & ~15L;
}
