// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The runner of an Optimum-style graph with dense past tensors (<see cref="OnnxDecoderModel"/>): it owns the step and
/// the KV pages (<see cref="PagedKvStore"/>, host memory). Each step gathers every row's cached KV into dense past
/// tensors (right-padded: row <c>r</c>'s past fills time <c>[0, past_r)</c>, the rest is masked), runs the model's
/// session once for the whole batch, scatters the new tokens' KV back into their blocks, and returns the logits of the
/// last new position of each row that asked for them (or of every new position, for rows that ask for all). Decode-only
/// steps run over a fixed-shape bucket that keeps the rows' past between steps while the batch is unchanged
/// (<c>DenseKvRunner.BucketedDecode.cs</c>, ADR 0001), allocation-free. Not thread-safe: the engine's scheduler loop is
/// its only caller.
/// </summary>
public sealed partial class DenseKvRunner : IModelRunner
{
    private readonly OnnxDecoderModel _model;
    private readonly PagedKvStore _store;
    private readonly RunOptions _runOptions = new();
    private readonly OrtValue[] _inputs;
    private readonly int[] _totalSequenceLength = [0];
    private readonly bool[] _useCacheBranch = [true];
    private readonly float[][] _pastKeys;
    private readonly float[][] _pastValues;
    private readonly bool _contiguousRows;
    private int[] _seqlensK = new int[64];
    private long[] _inputIds = new long[256];
    private long[] _positions = new long[256];
    private long[] _mask = new long[256];

    /// <summary>Creates the runner with <paramref name="blockCount"/> blocks of <paramref name="blockSize"/> tokens.</summary>
    public DenseKvRunner(OnnxDecoderModel model, int blockCount, int blockSize)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _store = new PagedKvStore(model.Spec, blockCount, blockSize);
        _contiguousRows = model.ContiguousRows;
        _inputs = new OrtValue[model.InputNames.Length];
        var layers = model.Spec.KvLayers.Count;
        _pastKeys = new float[layers][];
        _pastValues = new float[layers][];
        for (var i = 0; i < layers; i++)
        {
            _pastKeys[i] = [];
            _pastValues[i] = [];
        }
    }

    /// <inheritdoc />
    public ModelSpec Spec => _model.Spec;

    /// <inheritdoc />
    public int BlockCount => _store.BlockCount;

    /// <inheritdoc />
    public int BlockSize => _store.BlockSize;


    /// <summary>
    /// Runs one step for <paramref name="batch"/> over this runner's KV pages. The logits of the rows that want them
    /// are written to <paramref name="logits"/>, <see cref="ModelSpec.VocabularySize"/> floats per position, in row order
    /// (<see cref="ForwardBatch.LogitRowCount"/> rows: a row's last position, or each of its positions for <see cref="RowLogits.All"/>).
    /// </summary>
    public void Forward(ForwardBatch batch, Span<float> logits) => ForwardTimed(batch, logits);

    /// <summary>
    /// <see cref="Forward"/>, returning where the step's time went (for profiling; the timestamps cost nanoseconds).
    /// </summary>
    public StepTiming ForwardTimed(ForwardBatch batch, Span<float> logits)
    {
        var start = Stopwatch.GetTimestamp();
        var rows = batch.RowCount;
        var vocab = Spec.VocabularySize;
        if (logits.Length < batch.LogitRowCount * vocab)
        {
            throw new ArgumentException("The logits buffer is too small for the rows that want logits.", nameof(logits));
        }

        if (ExceedsLogitBudget(batch))
        {
            return ForwardWithinLogitBudget(batch, logits);
        }

        if (NeedsSplit(batch))
        {
            return ForwardSplit(batch, logits);
        }

        // Decode-only steps of a padded graph run over the bucket (fixed shapes, no gather while the sequences stay);
        // contiguous rows (GroupQueryAttention) and steps with prefills are assembled from the pages.
        if (!_contiguousRows && batch.MaxNewTokens == 1)
        {
            return ForwardBucketed(batch, logits);
        }

        var newLength = batch.MaxNewTokens;
        var pastLength = batch.MaxPastLength;
        FillTokenInputs(batch, rows, newLength, pastLength, pastLength + newLength);
        GatherPast(batch, rows, pastLength);

        var totalLength = pastLength + newLength;
        var gathered = Stopwatch.GetTimestamp();

        var input = 0;
        IDisposableReadOnlyCollection<OrtValue>? outputs = null;
        try
        {
            _inputs[input++] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _inputIds.AsMemory(0, rows * newLength), [rows, newLength]);
            _inputs[input++] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _mask.AsMemory(0, rows * totalLength), [rows, totalLength]);
            if (_model.HasPositionIds)
            {
                _inputs[input++] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _positions.AsMemory(0, rows * newLength), [rows, newLength]);
            }

            if (_model.HasUseCacheBranch)
            {
                _inputs[input++] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _useCacheBranch.AsMemory(), [1]);
            }

            if (_model.HasSeqlensK)
            {
                _inputs[input++] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _seqlensK.AsMemory(0, rows), [rows]);
            }

            if (_model.HasTotalSequenceLength)
            {
                _totalSequenceLength[0] = totalLength;
                _inputs[input++] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _totalSequenceLength.AsMemory(), []);
            }

            for (var i = 0; i < Spec.KvLayers.Count; i++)
            {
                var layer = Spec.KvLayers[i];
                _inputs[input++] = OrtValue.CreateTensorValueFromMemory(
                    OrtMemoryInfo.DefaultInstance,
                    _pastKeys[i].AsMemory(0, rows * layer.KeyHeads * pastLength * layer.KeyWidth),
                    [rows, layer.KeyHeads, pastLength, layer.KeyWidth]);
                _inputs[input++] = OrtValue.CreateTensorValueFromMemory(
                    OrtMemoryInfo.DefaultInstance,
                    _pastValues[i].AsMemory(0, rows * layer.ValueHeads * pastLength * layer.ValueWidth),
                    [rows, layer.ValueHeads, pastLength, layer.ValueWidth]);
            }

            outputs = _model.Session.Run(_runOptions, _model.InputNames, _inputs, _model.OutputNames);
            var ran = Stopwatch.GetTimestamp();
            CopyLogits(batch, outputs[0].GetTensorDataAsSpan<float>(), newLength, logits);
            for (var i = 0; i < Spec.KvLayers.Count; i++)
            {
                var layer = Spec.KvLayers[i];
                ScatterPresent(batch, outputs[1 + (2 * i)], _store.Keys[i], _store.BlockSize, layer.KeyHeads, layer.KeyWidth, pastLength, totalLength);
                ScatterPresent(batch, outputs[2 + (2 * i)], _store.Values[i], _store.BlockSize, layer.ValueHeads, layer.ValueWidth, pastLength, totalLength);
            }

            return new StepTiming(
                Stopwatch.GetElapsedTime(start, gathered).TotalMilliseconds,
                Stopwatch.GetElapsedTime(gathered, ran).TotalMilliseconds,
                Stopwatch.GetElapsedTime(ran).TotalMilliseconds);
        }
        finally
        {
            outputs?.Dispose();
            for (var i = 0; i < input; i++)
            {
                _inputs[i].Dispose();
            }
        }
    }

    /// <summary>Releases the decode bucket; the session belongs to the served model and the pages are managed memory.</summary>
    public void Dispose()
    {
        ReleaseBucket();
        _runOptions.Dispose();
    }

    private void FillTokenInputs(ForwardBatch batch, int rows, int newLength, int pastLength, int totalLength)
    {
        Grow(ref _inputIds, rows * newLength);
        Grow(ref _positions, rows * newLength);
        Grow(ref _mask, rows * totalLength);
        Grow(ref _seqlensK, rows);
        for (var r = 0; r < rows; r++)
        {
            var tokens = batch.Tokens(r);
            var past = batch.PastLength(r);
            var ids = _inputIds.AsSpan(r * newLength, newLength);
            var positions = _positions.AsSpan(r * newLength, newLength);
            for (var j = 0; j < newLength; j++)
            {
                // Padding positions repeat the row's last token at the next positions; their outputs are ignored.
                ids[j] = j < tokens.Length ? tokens[j] : tokens[^1];
                positions[j] = Math.Min(past + j, Spec.ContextLength - 1);
            }

            var mask = _mask.AsSpan(r * totalLength, totalLength);
            if (_contiguousRows)
            {
                // One run of ones: the row's past, then all newLength positions, its padding included, so that
                // GroupQueryAttention's past length (seqlens_k + 1 - newLength) is the row's own; padding sits after
                // the row's real tokens, where causality keeps it from them.
                mask[..(past + newLength)].Fill(1);
                mask[(past + newLength)..].Clear();
                _seqlensK[r] = past + newLength - 1;
                continue;
            }

            mask[..past].Fill(1);
            mask[past..pastLength].Clear();
            mask.Slice(pastLength, tokens.Length).Fill(1);
            mask[(pastLength + tokens.Length)..].Clear();
        }
    }

    private void GatherPast(ForwardBatch batch, int rows, int pastLength)
    {
        for (var i = 0; i < Spec.KvLayers.Count; i++)
        {
            var layer = Spec.KvLayers[i];
            Grow(ref _pastKeys[i], rows * layer.KeyHeads * pastLength * layer.KeyWidth);
            Grow(ref _pastValues[i], rows * layer.ValueHeads * pastLength * layer.ValueWidth);
            for (var r = 0; r < rows; r++)
            {
                Gather(batch.BlockTable(r), batch.PastLength(r), _store.Keys[i], _store.BlockSize, layer.KeyHeads, layer.KeyWidth, _pastKeys[i].AsSpan(r * layer.KeyHeads * pastLength * layer.KeyWidth), pastLength);
                Gather(batch.BlockTable(r), batch.PastLength(r), _store.Values[i], _store.BlockSize, layer.ValueHeads, layer.ValueWidth, _pastValues[i].AsSpan(r * layer.ValueHeads * pastLength * layer.ValueWidth), pastLength);
            }
        }
    }

    private static void Gather(ReadOnlySpan<int> blocks, int length, float[] pool, int blockSize, int heads, int width, Span<float> destination, int pastLength)
    {
        var blockFloats = heads * blockSize * width;
        for (var h = 0; h < heads; h++)
        {
            var head = destination.Slice(h * pastLength * width, pastLength * width);
            for (int t = 0, b = 0; t < length; t += blockSize, b++)
            {
                var count = Math.Min(blockSize, length - t);
                pool.AsSpan((blocks[b] * blockFloats) + (h * blockSize * width), count * width).CopyTo(head.Slice(t * width));
            }

            // Masked padding must still be finite: stale values times a zero weight could otherwise be NaN.
            head[(length * width)..].Clear();
        }
    }

    private void ScatterPresent(ForwardBatch batch, OrtValue presentValue, float[] pool, int blockSize, int heads, int width, int pastLength, int totalLength)
    {
        var present = presentValue.GetTensorDataAsSpan<float>();
        if (_contiguousRows)
        {
            // The present's time axis as the graph made it (GroupQueryAttention sizes it itself), from its element count.
            totalLength = present.Length / (batch.RowCount * heads * width);
        }

        var blockFloats = heads * blockSize * width;
        for (var r = 0; r < batch.RowCount; r++)
        {
            var blocks = batch.BlockTable(r);
            var past = batch.PastLength(r);
            var count = batch.Tokens(r).Length;
            for (var h = 0; h < heads; h++)
            {
                // New tokens sit at the batch's longest past (padded rows), or right after the row's own past (contiguous rows).
                var offset = _contiguousRows ? past : pastLength;
                var source = present.Slice((((r * heads) + h) * totalLength + offset) * width, count * width);
                for (var j = 0; j < count; j++)
                {
                    var position = past + j;
                    var block = blocks[position / blockSize];
                    source.Slice(j * width, width).CopyTo(pool.AsSpan((block * blockFloats) + (((h * blockSize) + (position % blockSize)) * width), width));
                }
            }
        }
    }

    private void CopyLogits(ForwardBatch batch, ReadOnlySpan<float> all, int newLength, Span<float> destination)
    {
        var vocab = Spec.VocabularySize;
        var output = 0;
        for (var r = 0; r < batch.RowCount; r++)
        {
            // A row's positions are contiguous in [rows, newLength, vocab]: its last `count` new positions are one slice.
            var count = batch.LogitRows(r);
            if (count == 0)
            {
                continue;
            }

            var first = batch.Tokens(r).Length - count;
            all.Slice(((r * newLength) + first) * vocab, count * vocab).CopyTo(destination.Slice(output * vocab, count * vocab));
            output += count;
        }
    }

    private static void Grow<T>(ref T[] array, int length)
    {
        if (length > array.Length)
        {
            array = new T[Math.Max(length, array.Length * 2)];
        }
    }
}
