// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Runs a <see cref="PagedDecoderModel"/> over KV pools resident on its CUDA device (ADR 0003). Each layer's key and value
/// pools (<c>[blocks, block_size, kv_heads, head_dim]</c>) are allocated once, zeroed, and bound as both the
/// PagedAttention input and its aliased output, so the cache never leaves the device. A step packs every row's new
/// tokens, copies the small int inputs into device buffers at fixed addresses (<see cref="DeviceTensorBuffer{T}"/>;
/// views cached per shape, bindings renewed only when a shape changes, so a steady decode step creates nothing), and
/// brings back <c>next_tokens</c> always and the logit rows only when some row needs its distribution.
/// Decode steps are replayed as CUDA graphs (<see cref="CapturedDecode"/>) when the session captures them. With
/// <see cref="PagedDecoderModel.Deterministic"/> a step is run in pieces whose shapes do not depend on the batch: its
/// one-token rows in groups at the one fixed captured shape, each prompt row alone in chunks that end at multiples of
/// <see cref="OnnxSessionOptions.DeterministicChunkTokens"/> positions. A step of a padded-attention (MLA) graph whose
/// scores would outgrow <see cref="ScoreBudgetBytes"/>, or whose padding alone would score more than
/// <see cref="PaddingBudgetBytes"/>, runs in the calls <see cref="PaddedAttentionPlan"/> cuts it into.
/// Not thread-safe: the engine's scheduler loop is its only caller.
/// </summary>
internal sealed partial class PagedDeviceRunner : IModelRunner
{
    private readonly PagedDecoderModel _model;
    private readonly StepBinding _binding;
    private readonly RunOptions _runOptions = new();
    private readonly OrtMemoryInfo _deviceMemory;
    private readonly IntPtr[] _pools;
    private readonly KvPoolArena _arena;
    private IntPtr _arenaMemory;
    private readonly OrtValue[] _poolValues;
    private readonly DeviceTensorBuffer<long> _inputIds;
    private readonly DeviceTensorBuffer<int> _cumulative;
    private readonly DeviceTensorBuffer<int> _past;
    private readonly DeviceTensorBuffer<int> _blockTable;
    private readonly DeviceTensorBuffer<long> _logitsIndices;
    private readonly PinnedTensorBuffer<long> _nextTokens = new(256);
    private readonly PinnedTensorBuffer<float> _logits;
    private readonly PinnedTensorBuffer<int>? _metadata;
    private readonly CapturedDecode? _captured;
    private readonly bool _deterministic;
    private readonly int _chunk;
    private readonly int _paddedHeads;
    private readonly List<int> _cutOrder = [];
    private readonly List<PaddedAttentionPlan.Group> _cutGroups = [];
    private readonly ForwardBatch _piece = new();
    private int[] _pieceRows = new int[16];
    private int[] _logitStart = new int[16];
    private float[] _pieceLogits = [];
    private int _deviceLogitRows = -1;

    /// <summary>Allocates and zeroes <paramref name="blockCount"/> blocks of <paramref name="blockSize"/> tokens per layer on the model's device.</summary>
    public PagedDeviceRunner(PagedDecoderModel model, int blockCount, int blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        _model = model;
        BlockCount = blockCount;
        BlockSize = blockSize;
        _deviceMemory = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, model.DeviceId, OrtMemType.Default);
        _logits = new PinnedTensorBuffer<float>(model.Spec.VocabularySize);
        _inputIds = new DeviceTensorBuffer<long>(model.DeviceId, _deviceMemory, TensorElementType.Int64, 1024);
        _cumulative = new DeviceTensorBuffer<int>(model.DeviceId, _deviceMemory, TensorElementType.Int32, 257);
        _past = new DeviceTensorBuffer<int>(model.DeviceId, _deviceMemory, TensorElementType.Int32, 256);
        _blockTable = new DeviceTensorBuffer<int>(model.DeviceId, _deviceMemory, TensorElementType.Int32, 4096);
        _logitsIndices = new DeviceTensorBuffer<long>(model.DeviceId, _deviceMemory, TensorElementType.Int64, 256);
        _metadata = model.HasAttentionMetadata ? new PinnedTensorBuffer<int>(2) : null;
        _captured = model.CudaGraphs ? new CapturedDecode(model, _deviceMemory, blockCount, blockSize, model.CudaGraphMaxBatch, model.Deterministic) : null;
        _deterministic = model.Deterministic && _captured is not null;
        _chunk = (OnnxSessionOptions.DeterministicChunkTokens + blockSize - 1) / blockSize * blockSize;
        // A LATENT graph (PagedAttention reading the latent pool in place) pads nothing: only the gather form is cut.
        _paddedHeads = model.LatentAttention ? 0 : PaddedHeads(model.Spec);
        var layers = model.Spec.KvLayers;
        _pools = new IntPtr[layers.Count * 2];
        _poolValues = new OrtValue[layers.Count * 2];
        _binding = new StepBinding(model.Session);
        try
        {
            // Every pool in one allocation, laid out so that a block of all of them is one pitched copy (KvPoolArena).
            var poolBlockBytes = new long[_pools.Length];
            for (var slot = 0; slot < _pools.Length; slot++)
            {
                poolBlockBytes[slot] = PoolBlockBytes(slot);
            }

            _arena = KvPoolArena.Plan(poolBlockBytes, PoolBlocks, CudaRuntime.MaxPitch(model.DeviceId));
            _arenaMemory = CudaRuntime.AllocateZeroed(model.DeviceId, _arena.TotalBytes);
            for (var i = 0; i < layers.Count; i++)
            {
                BindPool(2 * i, $"key_cache.{i}", $"key_cache_out.{i}", layers[i].KeyHeads, layers[i].KeyWidth);
                if (layers[i].ValueWidth > 0)
                {
                    // A latent layer has no value pool (its value is the key's prefix).
                    BindPool((2 * i) + 1, $"value_cache.{i}", $"value_cache_out.{i}", layers[i].ValueHeads, layers[i].ValueWidth);
                }
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public ModelSpec Spec => _model.Spec;

    /// <inheritdoc />
    public int BlockCount { get; }

    /// <inheritdoc />
    public int BlockSize { get; }

    /// <summary>Blocks in each pool: with CUDA graphs, one more than the engine knows of, the scratch block that padding rows write to.</summary>
    private int PoolBlocks => BlockCount + (_captured is null ? 0 : 1);

    /// <summary>Packed rows of any lengths run in one call.</summary>
    public bool RunsMixedBatches => true;

    /// <summary><c>next_tokens</c> comes back every step.</summary>
    public bool ReportsArgmax => true;

    /// <summary>Decode shapes captured as CUDA graphs so far (0 without CUDA graphs).</summary>
    internal int CapturedShapes => _captured?.CapturedShapes ?? 0;

    /// <summary>
    /// Bytes of attention scores per layer that one model call of a padded-attention (MLA) graph may take before a step is
    /// cut into several calls (<see cref="PaddedAttentionPlan"/>); tests lower it to cut every step.
    /// </summary>
    internal long ScoreBudgetBytes { get; set; } = PaddedAttentionPlan.ScoreBudgetBytes;

    /// <summary>The wasted padded scores per layer above which an MLA step is cut (<see cref="PaddedAttentionPlan.PaddingBudgetBytes"/>; tests change it).</summary>
    internal long PaddingBudgetBytes { get; set; } = PaddedAttentionPlan.PaddingBudgetBytes;

    /// <summary>Steps run cut into several calls by <see cref="PaddedAttentionPlan"/> so far (tests read it).</summary>
    internal int CutSteps { get; private set; }

    /// <summary>Whether steps run in batch-invariant pieces (<c>--deterministic</c> with CUDA graphs on).</summary>
    internal bool Deterministic => _deterministic;

    /// <inheritdoc />
    public void Forward(ForwardBatch batch, Span<float> logits)
    {
        if (batch.DistributionsWanted && logits.Length < batch.LogitRowCount * Spec.VocabularySize)
        {
            throw new ArgumentException("The logits buffer is too small for the rows that want logits.", nameof(logits));
        }

        FinishTransfers();
        if (_deterministic)
        {
            ForwardInPieces(batch, logits);
            return;
        }

        if (_paddedHeads > 0 && PaddedAttentionPlan.Cut(batch, BlockSize, _paddedHeads, Spec.KvElementBytes, ScoreBudgetBytes, _cutOrder, _cutGroups, PaddingBudgetBytes))
        {
            ForwardCut(batch, logits);
            return;
        }

        ForwardWhole(batch, logits);
    }

    /// <summary>Runs <paramref name="batch"/> as one call: replayed when it is a captured decode shape, else eagerly.</summary>
    private void ForwardWhole(ForwardBatch batch, Span<float> logits)
    {
        if (_captured is not null && _captured.Fits(batch))
        {
            _captured.Run(batch, _binding, logits);
            _deviceLogitRows = -1;
            return;
        }

        ForwardEager(batch, logits);
    }

    /// <summary>
    /// The most query heads of the graph's padded-attention (MLA) layers, whose scores <see cref="PaddedAttentionPlan"/>
    /// bounds; 0 when the graph has none (PagedAttention does not pad rows).
    /// </summary>
    private static int PaddedHeads(ModelSpec spec)
    {
        var heads = 0;
        foreach (var layer in spec.AttentionLayers)
        {
            if (layer.Kind == Attention.AttentionKind.Mla)
            {
                heads = Math.Max(heads, layer.QueryHeads);
            }
        }

        return heads;
    }

    /// <summary>
    /// Runs <paramref name="batch"/> as <see cref="PaddedAttentionPlan.Cut"/> cut it: each group as one call (the decode
    /// group replayed where it is a captured shape), a row too long for the budget alone in chunks; results scattered
    /// back to the batch's logit rows.
    /// </summary>
    private void ForwardCut(ForwardBatch batch, Span<float> logits)
    {
        CutSteps++;
        IndexLogitRows(batch);
        var argmax = batch.Argmax;
        foreach (var group in _cutGroups)
        {
            if (group.Chunk > 0)
            {
                RunPromptRow(batch, _cutOrder[group.First], argmax, logits, group.Chunk, trimTable: true);
                continue;
            }

            _piece.Clear();
            _piece.DistributionsWanted = batch.DistributionsWanted;
            for (var i = group.First; i < group.First + group.Count; i++)
            {
                var r = _cutOrder[i];
                _piece.AddRow(batch.Tokens(r), batch.PastLength(r), batch.BlockTable(r), batch.Logits(r), batch.SequenceId(r));
            }

            RunPiece(batch, CollectionsMarshal.AsSpan(_cutOrder).Slice(group.First, group.Count), argmax, logits);
        }

        _piece.Clear();
    }

    /// <summary>
    /// <c>--deterministic</c>: the one-token rows that want their next token go through the captured graph at its one
    /// fixed shape, <see cref="CapturedDecode.MaxBatch"/> at a time; every other row (a prompt chunk) runs alone, cut where
    /// its positions cross a multiple of the chunk, so its pieces are the same whatever the scheduler put beside it.
    /// </summary>
    private void ForwardInPieces(ForwardBatch batch, Span<float> logits)
    {
        var rows = batch.RowCount;
        Grow(ref _pieceRows, rows);
        IndexLogitRows(batch);
        var argmax = batch.Argmax;
        var group = 0;
        _piece.Clear();
        _piece.DistributionsWanted = batch.DistributionsWanted;
        for (var r = 0; r < rows; r++)
        {
            if (batch.Tokens(r).Length == 1 && batch.Logits(r) == RowLogits.Last)
            {
                _piece.AddRow(batch.Tokens(r), batch.PastLength(r), batch.BlockTable(r), RowLogits.Last, batch.SequenceId(r));
                _pieceRows[group++] = r;
                if (group == _captured!.MaxBatch)
                {
                    RunPiece(batch, _pieceRows.AsSpan(0, group), argmax, logits);
                    group = 0;
                }
            }
        }

        if (group > 0)
        {
            RunPiece(batch, _pieceRows.AsSpan(0, group), argmax, logits);
        }

        for (var r = 0; r < rows; r++)
        {
            if (batch.Tokens(r).Length != 1 || batch.Logits(r) != RowLogits.Last)
            {
                RunPromptRow(batch, r, argmax, logits, _chunk, trimTable: false);
            }
        }
    }

    /// <summary>
    /// Runs the rows gathered in <c>_piece</c> (<paramref name="batch"/>'s rows <paramref name="rows"/>, in that order) as one
    /// call (replayed where its shape is captured, else eagerly), scatters each row's argmax and logit rows back to
    /// <paramref name="batch"/>'s places, and empties the piece (keeping whether it wants distributions).
    /// </summary>
    private void RunPiece(ForwardBatch batch, ReadOnlySpan<int> rows, Span<int> argmax, Span<float> logits)
    {
        var vocab = Spec.VocabularySize;
        var distributions = _piece.DistributionsWanted;
        var pieceLogitRows = _piece.LogitRowCount;
        if (distributions && _pieceLogits.Length < pieceLogitRows * vocab)
        {
            _pieceLogits = new float[Math.Max(pieceLogitRows, _captured?.MaxBatch ?? 0) * vocab];
        }

        var pieceLogits = distributions ? _pieceLogits.AsSpan(0, pieceLogitRows * vocab) : Span<float>.Empty;
        ForwardWhole(_piece, pieceLogits);
        var pieceArgmax = _piece.Argmax;
        var at = 0;
        foreach (var r in rows)
        {
            var count = batch.LogitRows(r);
            pieceArgmax.Slice(at, count).CopyTo(argmax.Slice(_logitStart[r], count));
            if (distributions)
            {
                pieceLogits.Slice(at * vocab, count * vocab).CopyTo(logits.Slice(_logitStart[r] * vocab, count * vocab));
            }

            at += count;
        }

        _piece.Clear();
        _piece.DistributionsWanted = distributions;
    }

    /// <summary>
    /// Runs row <paramref name="row"/> alone, in pieces that end where its positions reach a multiple of
    /// <paramref name="chunk"/>; with <paramref name="trimTable"/> each piece gets only the blocks its positions reach
    /// (what padded attention scores against), else the row's whole table (the deterministic pieces' fixed shapes).
    /// </summary>
    private void RunPromptRow(ForwardBatch batch, int row, Span<int> argmax, Span<float> logits, int chunk, bool trimTable)
    {
        var vocab = Spec.VocabularySize;
        var tokens = batch.Tokens(row);
        var past = batch.PastLength(row);
        var logitRow = _logitStart[row];
        var done = 0;
        while (done < tokens.Length)
        {
            var position = past + done;
            var end = Math.Min(tokens.Length, done + chunk - (position % chunk));
            _piece.Clear();
            _piece.DistributionsWanted = batch.DistributionsWanted;
            var table = batch.BlockTable(row);
            if (trimTable)
            {
                table = table[..Math.Min(table.Length, (past + end + BlockSize - 1) / BlockSize)];
            }

            _piece.AddPiece(batch, row, done, end, table);
            var pieceRows = _piece.LogitRowCount;
            ForwardEager(_piece, batch.DistributionsWanted ? logits.Slice(logitRow * vocab, pieceRows * vocab) : Span<float>.Empty);
            _piece.Argmax.CopyTo(argmax.Slice(logitRow, pieceRows));
            logitRow += pieceRows;
            done = end;
        }
    }

    /// <summary>Fills <c>_logitStart</c>: each row's first logit row in <paramref name="batch"/>'s results.</summary>
    private void IndexLogitRows(ForwardBatch batch)
    {
        Grow(ref _logitStart, batch.RowCount);
        var start = 0;
        for (var r = 0; r < batch.RowCount; r++)
        {
            _logitStart[r] = start;
            start += batch.LogitRows(r);
        }
    }

    private static void Grow(ref int[] array, int length)
    {
        if (length > array.Length)
        {
            Array.Resize(ref array, Math.Max(length, array.Length * 2));
        }
    }

    /// <summary>Runs <paramref name="batch"/> uncaptured at its own shape.</summary>
    private void ForwardEager(ForwardBatch batch, Span<float> logits)
    {
        var rows = batch.RowCount;
        var tokens = batch.TokenCount;
        var logitRows = batch.LogitRowCount;
        var vocab = Spec.VocabularySize;

        var maxBlocks = 1;
        var longest = 0;
        for (var r = 0; r < rows; r++)
        {
            maxBlocks = Math.Max(maxBlocks, batch.BlockTable(r).Length);
            longest = Math.Max(longest, batch.PastLength(r) + batch.Tokens(r).Length);
        }

        var ids = _inputIds.Reserve(tokens);
        var cumulative = _cumulative.Reserve(rows + 1);
        var past = _past.Reserve(rows);
        var table = _blockTable.Reserve(rows * maxBlocks);
        var indices = _logitsIndices.Reserve(logitRows);
        table.Clear();
        cumulative[0] = 0;
        var offset = 0;
        for (var r = 0; r < rows; r++)
        {
            var rowTokens = batch.Tokens(r);
            for (var t = 0; t < rowTokens.Length; t++)
            {
                ids[offset + t] = rowTokens[t];
            }

            var pastLength = batch.PastLength(r);
            var blocks = batch.BlockTable(r);
            var needed = (pastLength + rowTokens.Length + BlockSize - 1) / BlockSize;
            if (blocks.Length < needed)
            {
                throw new ArgumentException($"Row {r} holds {pastLength + rowTokens.Length} tokens but its block table has {blocks.Length} blocks of {BlockSize}.", nameof(batch));
            }

            blocks.CopyTo(table.Slice(r * maxBlocks));
            past[r] = pastLength;
            offset += rowTokens.Length;
            cumulative[r + 1] = offset;
        }

        batch.WriteLogitIndices(indices);

        // The step's ints go to their fixed device buffers here; the bindings change only with the shapes.
        _inputIds.Upload(tokens);
        _cumulative.Upload(rows + 1);
        _past.Upload(rows);
        _blockTable.Upload(rows * maxBlocks);
        _logitsIndices.Upload(logitRows);
        _binding.Input(PagedDecoderModel.InputIds, _inputIds.View(tokens));
        _binding.Input(PagedDecoderModel.CumulativeSequenceLength, _cumulative.View(rows + 1));
        _binding.Input(PagedDecoderModel.PastSequenceLengths, _past.View(rows));
        _binding.Input(PagedDecoderModel.BlockTable, _blockTable.View(rows, maxBlocks));
        _binding.Input(PagedDecoderModel.LogitsIndices, _logitsIndices.View(logitRows));
        if (_metadata is not null)
        {
            // Exact bounds, read on the host by PagedAttention to size and pick its kernel (no device readback).
            var bounds = _metadata.Reserve(2);
            bounds[0] = batch.MaxNewTokens;
            bounds[1] = longest;
            _binding.Input(PagedDecoderModel.AttentionMetadata, _metadata.View(2));
        }

        _nextTokens.Reserve(logitRows);
        _binding.Output(PagedDecoderModel.NextTokens, _nextTokens.View(logitRows));
        if (batch.DistributionsWanted)
        {
            _logits.Reserve(logitRows * vocab);
            _binding.Output(PagedDecoderModel.Logits, _logits.View(logitRows, vocab));
            _deviceLogitRows = -1;
        }
        else if (_deviceLogitRows != logitRows)
        {
            // ONNX Runtime allocates the output on the device (from its arena) and it is never copied back. The value
            // it leaves bound is reused by the next run, so it is bound afresh only when the row count changes.
            _binding.OutputTo(PagedDecoderModel.Logits, _deviceMemory);
            _deviceLogitRows = logitRows;
        }

        _binding.Run(_captured?.Uncaptured ?? _runOptions);

        batch.SetArgmax(_nextTokens.Read(logitRows));

        if (batch.DistributionsWanted)
        {
            _logits.Read(logitRows * vocab).CopyTo(logits);
        }
    }

    /// <summary>Frees the device pools and the binding.</summary>
    public void Dispose()
    {
        FinishAllTransfers();
        CudaRuntime.DestroyStream(_transferStream);
        _transferStream = IntPtr.Zero;
        _binding.Dispose();
        foreach (var value in _poolValues)
        {
            value?.Dispose();
        }

        Array.Clear(_pools);
        CudaRuntime.Free(_arenaMemory);
        _arenaMemory = IntPtr.Zero;

        _inputIds.Dispose();
        _cumulative.Dispose();
        _past.Dispose();
        _blockTable.Dispose();
        _logitsIndices.Dispose();
        _nextTokens.Dispose();
        _logits.Dispose();
        _metadata?.Dispose();
        _captured?.Dispose();
        _runOptions.Dispose();
        _deviceMemory.Dispose();
    }

    private void BindPool(int slot, string input, string output, int heads, int width)
    {
        long[] shape = [PoolBlocks, BlockSize, heads, width];
        var bytes = PoolBlocks * PoolBlockBytes(slot);
        _pools[slot] = _arenaMemory + (nint)_arena.Offset(slot);
        _poolValues[slot] = OrtValue.CreateTensorValueWithData(_deviceMemory, _model.KvType, shape, _pools[slot], bytes);
        _binding.Input(input, _poolValues[slot]);
        _binding.Output(output, _poolValues[slot]);
    }
}
