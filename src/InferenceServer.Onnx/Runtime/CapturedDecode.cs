// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Numerics;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Decode steps of a <see cref="PagedDeviceRunner"/> as CUDA graphs (ONNX Runtime's <c>enable_cuda_graph</c>): a step of
/// up to <see cref="MaxBatch"/> one-token greedy rows is padded to a power-of-two batch and a power-of-two block-table
/// width, and each such shape is one graph (<c>gpu_graph_id</c>), captured by ONNX Runtime after its warm-up runs and
/// replayed from then on. Replay reads the addresses captured, so every input and output of these steps lives in its
/// own device buffer that never moves, and the host-side bounds (<c>attention_metadata</c>) are fixed per shape (one
/// token per row; the table width's worth of tokens). Padding rows decode one token at position 0 into the scratch
/// block (the pool's last block, which the engine never hands out). Other steps run uncaptured (<c>gpu_graph_id</c> -1).
/// </summary>
internal sealed class CapturedDecode : IDisposable
{
    /// <summary>Largest captured decode batch (rows beyond it run uncaptured).</summary>
    public const int MaxBatch = 64;

    private readonly int _blockSize;
    private readonly int _scratchBlock;
    private readonly int _maxWidth;
    private readonly int _vocab;
    private readonly DeviceTensorBuffer<long> _ids;
    private readonly DeviceTensorBuffer<int> _cumulative;
    private readonly DeviceTensorBuffer<int> _past;
    private readonly DeviceTensorBuffer<int> _table;
    private readonly DeviceTensorBuffer<long> _indices;
    private readonly DeviceTensorBuffer<long> _next;
    private readonly DeviceTensorBuffer<float> _logits;
    private readonly Dictionary<(int Rows, int Width), (RunOptions Options, PinnedTensorBuffer<int> Bounds)> _shapes = [];

    /// <summary>Allocates the fixed buffers for a runner of <paramref name="blockCount"/> engine blocks (the scratch block is the next one).</summary>
    public CapturedDecode(PagedDecoderModel model, OrtMemoryInfo memory, int blockCount, int blockSize)
    {
        _blockSize = blockSize;
        _scratchBlock = blockCount;
        _vocab = model.Spec.VocabularySize;
        _maxWidth = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, (model.Spec.ContextLength + blockSize - 1) / blockSize));
        var device = model.DeviceId;
        _ids = new DeviceTensorBuffer<long>(device, memory, TensorElementType.Int64, MaxBatch);
        _cumulative = new DeviceTensorBuffer<int>(device, memory, TensorElementType.Int32, MaxBatch + 1);
        _past = new DeviceTensorBuffer<int>(device, memory, TensorElementType.Int32, MaxBatch);
        _table = new DeviceTensorBuffer<int>(device, memory, TensorElementType.Int32, MaxBatch * _maxWidth);
        _indices = new DeviceTensorBuffer<long>(device, memory, TensorElementType.Int64, MaxBatch);
        _next = new DeviceTensorBuffer<long>(device, memory, TensorElementType.Int64, MaxBatch);
        _logits = new DeviceTensorBuffer<float>(device, memory, TensorElementType.Float, MaxBatch * _vocab);
        Uncaptured = new RunOptions();
        Uncaptured.AddRunConfigEntry("gpu_graph_id", "-1");
    }

    /// <summary>Run options for the steps that are not captured.</summary>
    public RunOptions Uncaptured { get; }

    /// <summary>Whether <paramref name="batch"/> is a step this captures: greedy decodes only, one token and one logit row each.</summary>
    public bool Fits(ForwardBatch batch)
    {
        if (batch.DistributionsWanted || batch.RowCount == 0 || batch.RowCount > MaxBatch || batch.MaxNewTokens != 1 || batch.LogitRowCount != batch.RowCount)
        {
            return false;
        }

        for (var r = 0; r < batch.RowCount; r++)
        {
            if (batch.BlockTable(r).Length > _maxWidth)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Runs <paramref name="batch"/> (which <see cref="Fits"/>) through its shape's graph and fills its argmax.</summary>
    public void Run(ForwardBatch batch, StepBinding binding)
    {
        var rows = batch.RowCount;
        var maxBlocks = 1;
        for (var r = 0; r < rows; r++)
        {
            maxBlocks = Math.Max(maxBlocks, batch.BlockTable(r).Length);
        }

        var padded = (int)BitOperations.RoundUpToPowerOf2((uint)rows);
        var width = (int)BitOperations.RoundUpToPowerOf2((uint)maxBlocks);
        var ids = _ids.Reserve(padded);
        var cumulative = _cumulative.Reserve(padded + 1);
        var past = _past.Reserve(padded);
        var table = _table.Reserve(padded * width);
        var indices = _indices.Reserve(padded);
        table.Clear();
        cumulative[0] = 0;
        for (var r = 0; r < padded; r++)
        {
            cumulative[r + 1] = r + 1;
            indices[r] = r;
            if (r < rows)
            {
                ids[r] = batch.Tokens(r)[0];
                past[r] = batch.PastLength(r);
                batch.BlockTable(r).CopyTo(table.Slice(r * width));
            }
            else
            {
                ids[r] = 0;
                past[r] = 0;
                table[r * width] = _scratchBlock;
            }
        }

        _ids.Upload(padded);
        _cumulative.Upload(padded + 1);
        _past.Upload(padded);
        _table.Upload(padded * width);
        _indices.Upload(padded);

        if (!_shapes.TryGetValue((padded, width), out var shape))
        {
            var options = new RunOptions();
            options.AddRunConfigEntry("gpu_graph_id", (_shapes.Count + 1).ToString(CultureInfo.InvariantCulture));
            var bounds = new PinnedTensorBuffer<int>(2);
            var values = bounds.Reserve(2);
            values[0] = 1;
            values[1] = width * _blockSize;
            shape = (options, bounds);
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
