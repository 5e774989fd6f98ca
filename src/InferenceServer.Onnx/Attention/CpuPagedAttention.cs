// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>
/// Paged attention on the host's cores over a <see cref="HostKvPool"/>: online softmax per query head, returning the
/// output and its log-sum-exp so that partial results over disjoint KV ranges merge exactly (<see cref="AttentionMerge"/>).
/// </summary>
/// <remarks>
/// <para>
/// A call is planned on the calling thread into work items of (sequence, KV head, tile of query rows, KV range): all
/// query heads of one KV head's group and up to <see cref="TileVectors"/> query vectors are processed together, so each
/// KV row is read from memory once per group and tile (decode is then bandwidth-bound, not compute-bound). When the
/// work is uneven (few or long sequences), long KV ranges are cut on block boundaries into chunks sized so every thread
/// gets several, and the chunks' partial results are merged with the LSE merge in a second phase.
/// </para>
/// <para>
/// The items run on <see cref="AttentionWorkerPool"/>'s persistent threads (and the caller), taken from a shared counter.
/// Per block of one layer and KV head (contiguous in the pool), a thread converts the keys to fp32 in its scratch, computes
/// the scores of every query vector (SIMD dot products), updates the running max and sum with one vector exp per block,
/// converts the values and accumulates them (SIMD axpy). Nothing is allocated per call once the buffers have grown.
/// </para>
/// </remarks>
internal sealed unsafe partial class CpuPagedAttention : IDisposable
{
    /// <summary>Query vectors (rows x heads of one group) processed together per work item, unless one group has more.</summary>
    internal const int TileVectors = 64;

    /// <summary>The shortest KV range (in blocks) a long sequence is cut into for balance.</summary>
    private const int MinChunkBlocks = 16;

    /// <summary>Work items per thread the balancer aims for when it cuts long sequences.</summary>
    private const int ItemsPerThread = 4;

    private readonly AttentionWorkerPool _workers;
    private readonly AttentionScratch[] _scratch;
    private Item[] _items = new Item[64];
    private MergeGroup[] _groups = new MergeGroup[16];
    private float[] _partials = new float[1024];
    private int _itemCount;
    private int _groupCount;
    private int _nextItem;
    private int _nextGroup;
    private bool _merging;
    private Call _call;

    /// <summary>Creates the kernel with <paramref name="threads"/> threads, the caller's included (&lt;= 0: <see cref="Environment.ProcessorCount"/>).</summary>
    public CpuPagedAttention(int threads)
    {
        Threads = threads <= 0 ? Environment.ProcessorCount : threads;
        _scratch = new AttentionScratch[Threads];
        for (var i = 0; i < _scratch.Length; i++)
        {
            _scratch[i] = new AttentionScratch();
        }

        _workers = new AttentionWorkerPool(Threads, RunWorker);
    }

    /// <summary>Threads that attend (the caller's included).</summary>
    public int Threads { get; }

    /// <summary>Bytes the worker threads allocated while attending: 0 once warm (for tests).</summary>
    internal long WorkerAllocatedBytes => _workers.WorkerAllocatedBytes;

    /// <summary>Work items the last call ran (for tests and the benchmark).</summary>
    internal int LastItemCount => _itemCount;

    /// <summary>KV ranges the last call cut and merged (for tests and the benchmark).</summary>
    internal int LastMergeGroupCount => _groupCount;

    /// <summary>
    /// Attends <paramref name="work"/>'s query rows over layer <paramref name="layer"/> of <paramref name="pool"/>.
    /// <paramref name="q"/>: [QueryCount, queryHeads * KeyWidth]; <paramref name="output"/>: [QueryCount, queryHeads * ValueWidth];
    /// <paramref name="lse"/>: [QueryCount, queryHeads] (natural log of the sum of exp(scaled scores)); query head h uses
    /// KV head h / (queryHeads / KvHeads); <paramref name="headMask"/> (optional, [QueryCount, queryHeads]): a 0 entry skips
    /// that head (output 0, lse -inf) (Mixture-of-Head). Rows no sequence names are left untouched. Not thread-safe: one
    /// call at a time per instance.
    /// </summary>
    public void Attend(HostKvPool pool, int layer, AttentionWork work, int queryHeads, float scale,
        ReadOnlySpan<float> q, Span<float> output, Span<float> lse, ReadOnlySpan<float> headMask = default)
    {
        var shape = Validate(pool, layer, work, queryHeads, q, output, lse, headMask);
        var group = queryHeads / shape.KvHeads;
        var tileRows = Math.Max(1, TileVectors / group);
        var partialCount = Plan(pool, work, shape.KvHeads, tileRows);
        var vectors = tileRows * group;
        // Each partial result holds one tile's vectors: outputs, then their lse.
        var partialFloats = (long)partialCount * vectors * (shape.ValueWidth + 1);
        if (partialFloats > _partials.Length)
        {
            _partials = new float[Math.Max(partialFloats, _partials.Length * 2L)];
        }

        foreach (var scratch in _scratch)
        {
            scratch.Ensure(vectors, shape.KeyWidth, shape.ValueWidth, pool.BlockSize);
        }

        fixed (float* queries = q)
        fixed (float* outputs = output)
        fixed (float* lses = lse)
        fixed (float* mask = headMask)
        fixed (float* partials = _partials)
        {
            _call = new Call(pool, layer, work, shape, queryHeads, group, scale, queries, outputs, lses,
                headMask.IsEmpty ? null : mask, partials, vectors);
            try
            {
                _nextItem = 0;
                _merging = false;
                _workers.Run();
                if (_groupCount > 0)
                {
                    _nextGroup = 0;
                    _merging = true;
                    _workers.Run();
                }
            }
            finally
            {
                _call = default;
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _workers.Dispose();
        foreach (var scratch in _scratch)
        {
            scratch.Dispose();
        }
    }

    private void RunWorker(int index)
    {
        var scratch = _scratch[index];
        if (_merging)
        {
            for (var g = Interlocked.Increment(ref _nextGroup) - 1; g < _groupCount; g = Interlocked.Increment(ref _nextGroup) - 1)
            {
                Merge(in _call, in _groups[g]);
            }

            return;
        }

        for (var i = Interlocked.Increment(ref _nextItem) - 1; i < _itemCount; i = Interlocked.Increment(ref _nextItem) - 1)
        {
            Execute(in _call, in _items[i], scratch);
        }
    }

    /// <summary>Cuts the call into work items (and the merge groups of cut ranges) on the calling thread; returns the partial results it needs.</summary>
    private int Plan(HostKvPool pool, AttentionWork work, int kvHeads, int tileRows)
    {
        var blockSize = pool.BlockSize;

        // Total KV positions to visit (per KV head), for the chunk size that gives every thread several items.
        long total = 0;
        for (var s = 0; s < work.SequenceCount; s++)
        {
            ref readonly var sequence = ref work[s];
            for (var rowStart = 0; rowStart < sequence.QueryCount; rowStart += tileRows)
            {
                total += TileVisible(sequence, Math.Min(sequence.QueryCount, rowStart + tileRows) - 1);
            }
        }

        var chunk = (long)int.MaxValue;
        if (Threads > 1)
        {
            var target = (total * kvHeads / (Threads * ItemsPerThread)) + 1;
            chunk = Math.Max((long)MinChunkBlocks * blockSize, (target + blockSize - 1) / blockSize * blockSize);
        }

        _itemCount = 0;
        _groupCount = 0;
        var partialCount = 0;
        for (var s = 0; s < work.SequenceCount; s++)
        {
            ref readonly var sequence = ref work[s];
            for (var rowStart = 0; rowStart < sequence.QueryCount; rowStart += tileRows)
            {
                var rowCount = Math.Min(tileRows, sequence.QueryCount - rowStart);
                var visible = TileVisible(sequence, rowStart + rowCount - 1);
                var parts = visible > chunk + (chunk / 2) ? (int)((visible + chunk - 1) / chunk) : 1;
                for (var kvHead = 0; kvHead < kvHeads; kvHead++)
                {
                    if (parts == 1)
                    {
                        AddItem(new Item(s, kvHead, rowStart, rowCount, 0, visible, -1));
                        continue;
                    }

                    var length = (((visible + parts - 1) / parts) + blockSize - 1) / blockSize * blockSize;
                    var first = partialCount;
                    var made = 0;
                    for (var begin = 0; begin < visible; begin += length)
                    {
                        AddItem(new Item(s, kvHead, rowStart, rowCount, begin, Math.Min(visible, begin + length), partialCount++));
                        made++;
                    }

                    if (_groupCount == _groups.Length)
                    {
                        Array.Resize(ref _groups, _groups.Length * 2);
                    }

                    _groups[_groupCount++] = new MergeGroup(s, kvHead, rowStart, rowCount, first, made);
                }
            }
        }

        return partialCount;
    }

    private void AddItem(in Item item)
    {
        if (_itemCount == _items.Length)
        {
            Array.Resize(ref _items, _items.Length * 2);
        }

        _items[_itemCount++] = item;
    }

    /// <summary>KV positions (relative to the sequence's kvStart) the query row <paramref name="row"/> of the sequence sees.</summary>
    private static int TileVisible(in AttentionWork.Sequence sequence, int row) =>
        Math.Clamp(sequence.FirstQueryPosition + row - sequence.KvStart + 1, 0, sequence.KvCount);
}
