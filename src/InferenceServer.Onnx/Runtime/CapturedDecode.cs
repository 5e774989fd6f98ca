// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Numerics;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Decode steps of a <see cref="PagedDeviceRunner"/> as CUDA graphs (ONNX Runtime's <c>enable_cuda_graph</c>): a step of
/// up to <see cref="MaxBatch"/> one-token rows is padded to a batch bucket (<see cref="Bucket"/>: 1, 2, 4, 8, then every
/// multiple of 8 up to the cap, 256 by default) and a power-of-two block-table width, and each such shape is one graph
/// (<c>gpu_graph_id</c>), captured lazily by ONNX Runtime the first times the shape is seen and replayed from then on.
/// Replay reads the addresses captured, so every input and output of these steps lives in its own device buffer that
/// never moves, and the host-side bounds (<c>attention_metadata</c>) are fixed per shape (one token per row; the table
/// width's worth of tokens). Padding rows decode one token at position 0 into the scratch block (the pool's last block,
/// which the engine never hands out). Other steps run uncaptured (<c>gpu_graph_id</c> -1).
/// With <c>fixedShape</c> (<c>--deterministic</c>) every step runs at the one largest shape (the cap's bucket, the
/// whole context's table width), so a row meets the same kernels and reduction order whatever else is in the batch.
/// </summary>
internal sealed class CapturedDecode : IDisposable
{
    /// <summary>The default cap on captured decode rows (<c>--cuda-graph-max-batch</c>); rows beyond the cap run uncaptured.</summary>
    public const int DefaultMaxBatch = 256;

    /// <summary>Buckets up to this are powers of two; above it, multiples of it.</summary>
    private const int BucketStep = 8;

    private readonly int _blockSize;
    private readonly int _scratchBlock;
    private readonly int _maxWidth;
    private readonly int _vocab;
    private readonly bool _fixedShape;
    private readonly DeviceTensorBuffer<long> _ids;
    private readonly DeviceTensorBuffer<int> _cumulative;
    private readonly DeviceTensorBuffer<int> _past;
    private readonly DeviceTensorBuffer<int> _table;
    private readonly DeviceTensorBuffer<long> _indices;
    private readonly DeviceTensorBuffer<long> _next;
    private readonly DeviceTensorBuffer<float> _logits;
    private readonly Dictionary<(int Rows, int Width), (RunOptions Options, PinnedTensorBuffer<int> Bounds)> _shapes = [];
    private readonly int _graphIdBase;

    /// <summary>
    /// Allocates the fixed buffers for a runner of <paramref name="blockCount"/> engine blocks (the scratch block is the
    /// next one), capturing steps of up to <paramref name="maxBatch"/> rows; with <paramref name="fixedShape"/> every
    /// step runs at the largest shape.
    /// </summary>
    public CapturedDecode(PagedDecoderModel model, OrtMemoryInfo memory, int blockCount, int blockSize, int maxBatch, bool fixedShape)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBatch);
        _blockSize = blockSize;
        _scratchBlock = blockCount;
        _vocab = model.Spec.VocabularySize;
        _fixedShape = fixedShape;
        MaxBatch = maxBatch;
        // The session is the model's and outlives this runner: another runner's graphs get ids of their own, so none of
        // them replays graphs captured over this runner's buffers.
        _graphIdBase = model.ClaimGraphIds();
        _maxWidth = MaxWidth(model.Spec.ContextLength, blockSize);
        var rows = Bucket(maxBatch);
        var device = model.DeviceId;
        _ids = new DeviceTensorBuffer<long>(device, memory, TensorElementType.Int64, rows);
        _cumulative = new DeviceTensorBuffer<int>(device, memory, TensorElementType.Int32, rows + 1);
        _past = new DeviceTensorBuffer<int>(device, memory, TensorElementType.Int32, rows);
        _table = new DeviceTensorBuffer<int>(device, memory, TensorElementType.Int32, rows * _maxWidth);
        _indices = new DeviceTensorBuffer<long>(device, memory, TensorElementType.Int64, rows);
        _next = new DeviceTensorBuffer<long>(device, memory, TensorElementType.Int64, rows);
        _logits = new DeviceTensorBuffer<float>(device, memory, TensorElementType.Float, rows * _vocab);
        Uncaptured = new RunOptions();
        Uncaptured.AddRunConfigEntry("gpu_graph_id", "-1");
    }

    /// <summary>Largest captured decode batch (rows beyond it run uncaptured, or in groups of it with a fixed shape).</summary>
    public int MaxBatch { get; }

    /// <summary>Run options for the steps that are not captured.</summary>
    public RunOptions Uncaptured { get; }

    /// <summary>Shapes captured so far (each one graph).</summary>
    public int CapturedShapes => _shapes.Count;

    /// <summary>The padded batch of <paramref name="rows"/> rows: 1, 2, 4, 8, then the next multiple of 8.</summary>
    public static int Bucket(int rows) =>
        rows <= BucketStep ? (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, rows)) : (rows + BucketStep - 1) / BucketStep * BucketStep;

    /// <summary>The buckets of a cap of <paramref name="maxBatch"/> rows, in order (for logs and tests).</summary>
    public static IReadOnlyList<int> Buckets(int maxBatch)
    {
        var buckets = new List<int>();
        for (var rows = 1; rows <= maxBatch; rows = Bucket(rows) + 1)
        {
            buckets.Add(Bucket(rows));
        }

        return buckets;
    }

    /// <summary>The widest block table captured: the whole context's blocks, rounded up to a power of two.</summary>
    public static int MaxWidth(int contextLength, int blockSize) =>
        (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, (contextLength + blockSize - 1) / blockSize));

    /// <summary>
    /// Device bytes that captured decode needs beyond the weights and the KV pools, for a cap of
    /// <paramref name="maxBatch"/> rows, held back from the KV budget: the fixed buffers (fp32 logits of the largest
    /// bucket, ids, block tables) plus, per row of the largest bucket, twice what a captured step keeps in ONNX Runtime's
    /// arena (the LM head's rows in T and fp32, and <see cref="ActivationBytesPerRow"/> for the layers' activations,
    /// enough for an 8B-shaped layer), and 64 MiB for the graphs themselves. Checked on a GPU by <c>GpuTests</c>.
    /// </summary>
    public static long ReserveBytes(ModelSpec spec, int blockSize, int maxBatch)
    {
        ArgumentNullException.ThrowIfNull(spec);
        long rows = Bucket(maxBatch);
        var elementBytes = spec.KvElementBytes;
        var fixedBuffers = (rows * spec.VocabularySize * sizeof(float)) + (rows * MaxWidth(spec.ContextLength, blockSize) * sizeof(int)) + (rows * 64);
        var perRow = ActivationBytesPerRow + ((long)spec.VocabularySize * (elementBytes + sizeof(float)));
        return fixedBuffers + (2 * rows * perRow) + (64L << 20);
    }

    /// <summary>Arena bytes per row for a layer's activations in <see cref="ReserveBytes"/>: 256 KiB.</summary>
    public const long ActivationBytesPerRow = 256 * 1024;

    /// <summary>
    /// Whether <paramref name="batch"/> is a step this captures: one token and one logit row per row, at most
    /// <see cref="MaxBatch"/> rows, greedy (with a fixed shape, sampled rows too: their logits come back from the graph).
    /// </summary>
    public bool Fits(ForwardBatch batch) => (!batch.DistributionsWanted || _fixedShape) && Decodes(batch, MaxBatch, _maxWidth);

    /// <summary>
    /// Whether <paramref name="batch"/> is a decode step a captured graph can run: 1 to <paramref name="maxBatch"/> rows of
    /// one token and one logit row each, no block table wider than <paramref name="maxWidth"/> (also the split runner's
    /// captured steps, ADR 0011).
    /// </summary>
    public static bool Decodes(ForwardBatch batch, int maxBatch, int maxWidth)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.RowCount == 0 || batch.RowCount > maxBatch || batch.MaxNewTokens != 1 || batch.LogitRowCount != batch.RowCount)
        {
            return false;
        }

        for (var r = 0; r < batch.RowCount; r++)
        {
            if (batch.BlockTable(r).Length > maxWidth)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// A captured decode shape's <c>attention_metadata</c>, fixed per shape (a kernel reads it on the host at launch, so the
    /// graph keeps it): one new token per row, keys up to <paramref name="keys"/> (the table width's blocks).
    /// </summary>
    public static PinnedTensorBuffer<int> DecodeBounds(int keys)
    {
        var bounds = new PinnedTensorBuffer<int>(2);
        var values = bounds.Reserve(2);
        values[0] = 1;
        values[1] = keys;
        return bounds;
    }

    /// <summary>The block-table width a captured step of <paramref name="batch"/> runs at: its widest row's blocks, rounded up to a power of two.</summary>
    public static int TableWidth(ForwardBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var maxBlocks = 1;
        for (var r = 0; r < batch.RowCount; r++)
        {
            maxBlocks = Math.Max(maxBlocks, batch.BlockTable(r).Length);
        }

        return (int)BitOperations.RoundUpToPowerOf2((uint)maxBlocks);
    }

    /// <summary>
    /// Fills a captured decode step's row offsets (<paramref name="cumulative"/>, <paramref name="padded"/> + 1), past
    /// lengths and block tables (<paramref name="padded"/> rows of <paramref name="width"/>, cleared first): the
    /// one-token rows of <paramref name="batch"/>, then padding rows that decode at position 0 into
    /// <paramref name="scratchBlock"/> (a pool block no sequence owns). Also the split runner's (ADR 0011).
    /// </summary>
    public static void FillPadded(ForwardBatch batch, int padded, int width, int scratchBlock, Span<int> cumulative, Span<int> past, Span<int> table)
    {
        ArgumentNullException.ThrowIfNull(batch);
        table.Clear();
        cumulative[0] = 0;
        for (var r = 0; r < padded; r++)
        {
            cumulative[r + 1] = r + 1;
            if (r < batch.RowCount)
            {
                past[r] = batch.PastLength(r);
                batch.BlockTable(r).CopyTo(table.Slice(r * width));
            }
            else
            {
                past[r] = 0;
                table[r * width] = scratchBlock;
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="batch"/> (which <see cref="Fits"/>) through its shape's graph and fills its argmax, and when it
    /// wants distributions its rows' logits into <paramref name="logits"/> ([rows, vocab]).
    /// </summary>
    public void Run(ForwardBatch batch, StepBinding binding, Span<float> logits)
    {
        var rows = batch.RowCount;
        var padded = _fixedShape ? Bucket(MaxBatch) : Bucket(rows);
        var width = _fixedShape ? _maxWidth : TableWidth(batch);
        var ids = _ids.Reserve(padded);
        var indices = _indices.Reserve(padded);
        FillPadded(batch, padded, width, _scratchBlock, _cumulative.Reserve(padded + 1), _past.Reserve(padded), _table.Reserve(padded * width));
        for (var r = 0; r < padded; r++)
        {
            indices[r] = r;
            ids[r] = r < rows ? batch.Tokens(r)[0] : 0;
        }

        _ids.Upload(padded);
        _cumulative.Upload(padded + 1);
        _past.Upload(padded);
        _table.Upload(padded * width);
        _indices.Upload(padded);

        if (!_shapes.TryGetValue((padded, width), out var shape))
        {
            var options = new RunOptions();
            options.AddRunConfigEntry("gpu_graph_id", (_graphIdBase + _shapes.Count + 1).ToString(CultureInfo.InvariantCulture));
            shape = (options, DecodeBounds(width * _blockSize));
            _shapes.Add((padded, width), shape);
        }

        binding.Input(PagedDecoderModel.InputIds, _ids.View(padded));
        binding.Input(PagedDecoderModel.CumulativeSequenceLength, _cumulative.View(padded + 1));
        binding.Input(PagedDecoderModel.PastSequenceLengths, _past.View(padded));
        binding.Input(PagedDecoderModel.BlockTable, _table.View(padded, width));
        binding.Input(PagedDecoderModel.LogitsIndices, _indices.View(padded));
        binding.Input(PagedDecoderModel.AttentionMetadata, shape.Bounds.View(2));
        binding.Output(PagedDecoderModel.NextTokens, _next.View(padded));
        binding.Output(PagedDecoderModel.Logits, _logits.View(padded, _vocab));
        binding.Run(shape.Options);

        batch.SetArgmax(_next.Download(padded));
        if (batch.DistributionsWanted)
        {
            _logits.Download(rows * _vocab).CopyTo(logits);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var (options, bounds) in _shapes.Values)
        {
            options.Dispose();
            bounds.Dispose();
        }

        Uncaptured.Dispose();
        _ids.Dispose();
        _cumulative.Dispose();
        _past.Dispose();
        _table.Dispose();
        _indices.Dispose();
        _next.Dispose();
        _logits.Dispose();
    }
}
