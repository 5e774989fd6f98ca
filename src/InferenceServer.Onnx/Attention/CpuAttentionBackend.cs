// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// The <c>cpu</c> attention backend: KV pages in host memory (<see cref="HostKvPool"/>) for the global blocks
/// [<see cref="FirstBlock"/>, <see cref="FirstBlock"/> + <see cref="BlockCount"/>), attention on the host's cores
/// (<see cref="CpuPagedAttention"/>, which several backends may share). <see cref="Plan"/> maps each row's global block
/// table to local ids once per step: the new tokens' slots, and the row's KV positions here as runs (maximal stretches
/// of its block table that lie here). A row with k runs here takes part in k attention passes; pass 0 writes the output,
/// later passes merge into it. Buffers are reused and grow by doubling: a steady step allocates nothing.
/// </summary>
internal sealed class CpuAttentionBackend : IAttentionBackend
{
    private readonly HostKvPool _pool;
    private readonly CpuPagedAttention _kernel;
    private readonly bool _ownsPool = true;
    private readonly List<AttentionWork> _passes = [];
    private int _passCount;
    private int[] _slots = new int[256];
    private int[] _slotTokens = new int[256];
    private int _slotCount;
    private int _tokenCount;
    private int[] _localTable = new int[256];
    private float[] _keyRows = [];
    private float[] _valueRows = [];
    private float[] _partOutput = [];
    private float[] _partLse = [];
    private readonly List<(int Offset, int Count)> _promptRows = [];
    private readonly List<(int Offset, int Count)> _attendedRows = [];

    /// <summary>Creates the pages for <paramref name="blockCount"/> blocks from global id <paramref name="firstBlock"/>.</summary>
    public CpuAttentionBackend(IReadOnlyList<AttentionLayerSpec> layers, int firstBlock, int blockCount, int blockSize, KvStorage storage, CpuPagedAttention kernel)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstBlock);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockCount);
        var shapes = new KvLayerShape[layers.Count];
        for (var i = 0; i < shapes.Length; i++)
        {
            shapes[i] = layers[i].Shape;
        }

        _pool = new HostKvPool(shapes, blockCount, blockSize, storage);
        _kernel = kernel;
        FirstBlock = firstBlock;
        BlockCount = blockCount;
    }

    /// <summary>
    /// A second planner over <paramref name="owner"/>'s pages and kernel (a micro-batch lane, ADR 0010): it plans and
    /// attends its own rows, which touch other slots than the owner's; the owner disposes the pages. The two must not
    /// attend at the same time (they share the kernel).
    /// </summary>
    public CpuAttentionBackend(CpuAttentionBackend owner)
    {
        ArgumentNullException.ThrowIfNull(owner);
        _pool = owner._pool;
        _kernel = owner._kernel;
        _ownsPool = false;
        PromptRowMinTokens = owner.PromptRowMinTokens;
        FirstBlock = owner.FirstBlock;
        BlockCount = owner.BlockCount;
    }

    /// <inheritdoc />
    public string Device => "cpu";

    /// <inheritdoc />
    public int FirstBlock { get; }

    /// <inheritdoc />
    public int BlockCount { get; }

    /// <inheritdoc />
    public long KvBytes => _pool.TotalBytes;

    /// <inheritdoc />
    public bool HasWork => _passCount > 0 || _slotCount > 0;

    /// <summary>
    /// When above 0, rows that start at position 0 with at least this many new tokens only append their k and v here, their
    /// attention over themselves computed on the compute device (<see cref="PromptAttention.IsPromptRow"/>):
    /// <see cref="Attend"/> leaves their output and lse rows as they are (the compute device writes them after; clearing a
    /// 2,048-token prompt's rows was 16 MB a layer on the 1B shape). Read by <see cref="Plan"/>.
    /// </summary>
    public int PromptRowMinTokens { get; init; }

    /// <summary>The pages (tests compare them across backends).</summary>
    internal HostKvPool Pool => _pool;

    /// <inheritdoc />
    public void Plan(ForwardBatch batch)
    {
        var blockSize = _pool.BlockSize;
        _slotCount = 0;
        _passCount = 0;
        _tokenCount = batch.TokenCount;
        // The rows only stored here, and the others, which get 0 and -infinity in a step of no attention here.
        PromptAttention.FreshRows(batch, PromptRowMinTokens, _promptRows);
        PromptAttention.Rest(_promptRows, _tokenCount, _attendedRows);
        var offset = 0;
        for (var r = 0; r < batch.RowCount; r++)
        {
            var past = batch.PastLength(r);
            var count = batch.Tokens(r).Length;
            var table = batch.BlockTable(r);
            for (var t = 0; t < count; t++)
            {
                var position = past + t;
                var local = table[position / blockSize] - FirstBlock;
                if ((uint)local < (uint)BlockCount)
                {
                    Grow(ref _slots, _slotCount + 1);
                    Grow(ref _slotTokens, _slotCount + 1);
                    _slots[_slotCount] = (local * blockSize) + (position % blockSize);
                    _slotTokens[_slotCount++] = offset + t;
                }
            }

            offset += count;
        }

        // The runs of each row: pass k holds every row's k-th run here, or nothing for that row.
        for (var pass = 0; ; pass++)
        {
            var any = false;
            var work = PassWork(pass);
            work.Clear();
            offset = 0;
            for (var r = 0; r < batch.RowCount; r++)
            {
                var past = batch.PastLength(r);
                var count = batch.Tokens(r).Length;
                var prompt = PromptAttention.IsPromptRow(past, count, PromptRowMinTokens);
                var (start, length) = prompt ? (0, 0) : Run(batch.BlockTable(r), (past + count + blockSize - 1) / blockSize, pass);
                if (length > 0)
                {
                    var local = LocalTable(batch.BlockTable(r).Slice(start, length));
                    var kvStart = start * blockSize;
                    var kvCount = Math.Min(past + count, (start + length) * blockSize) - kvStart;
                    work.AddSequence(local, kvStart, kvCount, offset, count, past);
                    any = true;
                }
                else
                {
                    // Nothing here for this row in this pass: 0 and -infinity, except a prompt row's, which is left alone.
                    work.AddSequence([], 0, 0, offset, prompt ? 0 : count, past);
                }

                offset += count;
            }

            if (!any)
            {
                break;
            }

            _passCount = pass + 1;
        }

    }

    /// <inheritdoc />
    public void Attend(int layer, AttentionLayerSpec spec, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<float> headMask, Span<float> output, Span<float> lse)
    {
        var keyWidth = spec.KvHeads * spec.KeyWidth;
        var valueWidth = spec.KvHeads * spec.ValueWidth;
        if (_slotCount == _tokenCount)
        {
            // Every new token's slot is here (one backend, or a step inside this one): the rows go as they are.
            _pool.Write(layer, _slots.AsSpan(0, _slotCount), k[..(_tokenCount * keyWidth)], v[..(_tokenCount * valueWidth)]);
        }
        else if (_slotCount > 0)
        {
            Grow(ref _keyRows, _slotCount * keyWidth);
            Grow(ref _valueRows, _slotCount * valueWidth);
            for (var i = 0; i < _slotCount; i++)
            {
                var token = _slotTokens[i];
                k.Slice(token * keyWidth, keyWidth).CopyTo(_keyRows.AsSpan(i * keyWidth));
                v.Slice(token * valueWidth, valueWidth).CopyTo(_valueRows.AsSpan(i * valueWidth));
            }

            _pool.Write(layer, _slots.AsSpan(0, _slotCount), _keyRows.AsSpan(0, _slotCount * keyWidth), _valueRows.AsSpan(0, _slotCount * valueWidth));
        }

        var outputLength = _tokenCount * spec.OutputWidth;
        var lseLength = _tokenCount * spec.QueryHeads;
        if (_passCount == 0)
        {
            // No row sees KV here: 0 and -infinity for each, but for the prompt rows, which the compute device attends.
            foreach (var (offset, count) in _attendedRows)
            {
                output.Slice(offset * spec.OutputWidth, count * spec.OutputWidth).Clear();
                lse.Slice(offset * spec.QueryHeads, count * spec.QueryHeads).Fill(float.NegativeInfinity);
            }

            return;
        }

        _kernel.Attend(_pool, layer, _passes[0], spec.QueryHeads, spec.Scale, q, output[..outputLength], lse[..lseLength], headMask);
        if (_passCount > 1)
        {
            Grow(ref _partOutput, outputLength);
            Grow(ref _partLse, lseLength);
            for (var pass = 1; pass < _passCount; pass++)
            {
                var partOutput = _partOutput.AsSpan(0, outputLength);
                var partLse = _partLse.AsSpan(0, lseLength);
                _kernel.Attend(_pool, layer, _passes[pass], spec.QueryHeads, spec.Scale, q, partOutput, partLse, headMask);
                AttentionMerge.MergeInto(output[..outputLength], lse[..lseLength], partOutput, partLse, spec.QueryHeads, spec.ValueWidth);
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsPool)
        {
            _pool.Dispose();
        }
    }

    /// <summary>
    /// The <paramref name="which"/>-th run (0-based) of <paramref name="table"/>'s first <paramref name="blocks"/> entries
    /// that lie here: its first index and length, or length 0 when there are not that many.
    /// </summary>
    private (int Start, int Length) Run(ReadOnlySpan<int> table, int blocks, int which)
    {
        var seen = 0;
        var j = 0;
        while (j < blocks)
        {
            if ((uint)(table[j] - FirstBlock) >= (uint)BlockCount)
            {
                j++;
                continue;
            }

            var start = j;
            while (j < blocks && (uint)(table[j] - FirstBlock) < (uint)BlockCount)
            {
                j++;
            }

            if (seen++ == which)
            {
                return (start, j - start);
            }
        }

        return (0, 0);
    }

    private ReadOnlySpan<int> LocalTable(ReadOnlySpan<int> global)
    {
        Grow(ref _localTable, global.Length);
        for (var i = 0; i < global.Length; i++)
        {
            _localTable[i] = global[i] - FirstBlock;
        }

        return _localTable.AsSpan(0, global.Length);
    }

    private AttentionWork PassWork(int pass)
    {
        while (_passes.Count <= pass)
        {
            _passes.Add(new AttentionWork());
        }

        return _passes[pass];
    }

    private static void Grow<T>(ref T[] array, int length)
    {
        if (length > array.Length)
        {
            Array.Resize(ref array, Math.Max(length, array.Length * 2));
        }
    }
}
