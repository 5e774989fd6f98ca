// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using InferenceServer.Onnx.Packaging;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// A decoder graph with Optimum-style I/O (<c>input_ids</c>, <c>attention_mask</c>, <c>position_ids</c>,
/// <c>past_key_values.{i}.key|value</c> in; <c>logits</c>, <c>present.{i}.key|value</c> out) in one ONNX Runtime session,
/// run over a <see cref="PagedKvStore"/>. Each step gathers every row's cached KV into dense past tensors
/// (right-padded: row <c>r</c>'s past fills time <c>[0, past_r)</c>, the rest is masked), runs the graph once for the whole
/// batch, scatters the new tokens' KV back into their blocks, and returns the logits of the last new position of
/// each row that asked for them (or of every new position, for rows that ask for all). Not thread-safe: the engine's scheduler loop is its only caller.
/// </summary>
public sealed partial class OnnxDecoderModel : IDecoderModel
{
    private const string UseCacheBranch = "use_cache_branch";

    private readonly InferenceSession _session;
    private readonly bool _hasPositionIds;
    private readonly bool _hasUseCacheBranch;
    private readonly bool _contiguousRows;
    private readonly bool _hasSeqlensK;
    private readonly bool _hasTotalSequenceLength;
    private readonly int[] _totalSequenceLength = [0];
    private int[] _seqlensK = new int[64];
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;
    private readonly OrtValue[] _inputs;
    private readonly RunOptions _runOptions = new();

    private long[] _inputIds = new long[256];
    private long[] _positions = new long[256];
    private long[] _mask = new long[256];
    private readonly float[][] _pastKeys;
    private readonly float[][] _pastValues;
    private readonly bool[] _useCacheBranch = [true];

    private OnnxDecoderModel(InferenceSession session, ModelSpec spec, bool hasPositionIds, bool hasUseCacheBranch, DecoderIo io)
    {
        _session = session;
        Spec = spec;
        _hasPositionIds = hasPositionIds;
        _hasUseCacheBranch = hasUseCacheBranch;
        _contiguousRows = io.ContiguousRows;
        _hasSeqlensK = session.InputMetadata.ContainsKey(io.SeqlensK);
        _hasTotalSequenceLength = session.InputMetadata.ContainsKey(io.TotalSequenceLength);

        var inputs = new List<string> { io.InputIds, io.AttentionMask };
        if (hasPositionIds)
        {
            inputs.Add(io.PositionIds);
        }

        if (hasUseCacheBranch)
        {
            inputs.Add(UseCacheBranch);
        }

        if (_hasSeqlensK)
        {
            inputs.Add(io.SeqlensK);
        }

        if (_hasTotalSequenceLength)
        {
            inputs.Add(io.TotalSequenceLength);
        }

        var outputs = new List<string> { io.Logits };
        foreach (var layer in spec.KvLayers)
        {
            inputs.Add(DecoderIo.Format(io.PastKeyNames, layer.Layer));
            inputs.Add(DecoderIo.Format(io.PastValueNames, layer.Layer));
            outputs.Add(DecoderIo.Format(io.PresentKeyNames, layer.Layer));
            outputs.Add(DecoderIo.Format(io.PresentValueNames, layer.Layer));
        }

        _inputNames = [.. inputs];
        _outputNames = [.. outputs];
        _inputs = new OrtValue[_inputNames.Length];
        _pastKeys = new float[spec.KvLayers.Count][];
        _pastValues = new float[spec.KvLayers.Count][];
        for (var i = 0; i < spec.KvLayers.Count; i++)
        {
            _pastKeys[i] = [];
            _pastValues[i] = [];
        }
    }

    /// <summary>The model's vocabulary, context length and KV layout, read from the graph.</summary>
    public ModelSpec Spec { get; }

    /// <summary>Where the model runs: <c>cpu</c> or <c>cuda:N</c>.</summary>
    public ComputeDevice Device { get; private init; }

    /// <summary>Why <c>auto</c> chose the CPU (the CUDA provider's load error), or null.</summary>
    public string? DeviceNote { get; private init; }

    /// <inheritdoc />
    public string? GraphNote { get; private init; }

    /// <summary>Opens <paramref name="package"/>'s dense-past graph on the device <paramref name="options"/> names and reads its KV layout.</summary>
    /// <exception cref="ModelPackageException">The graph cannot be loaded or lacks the expected inputs.</exception>
    public static OnnxDecoderModel Open(ModelPackage package, OnnxSessionOptions? options = null)
    {
        var (session, device, deviceNote, graphNote) = new OnnxSessionFactory(options ?? new OnnxSessionOptions()).OpenModel(package);
        return FromSession(session, package, device, deviceNote, graphNote);
    }

    /// <summary>Wraps an open session of a dense-past graph; disposes it when the graph is not one.</summary>
    internal static OnnxDecoderModel FromSession(InferenceSession session, ModelPackage package, ComputeDevice device, string? deviceNote, string? graphNote = null)
    {
        try
        {
            var (spec, hasPositions, hasBranch) = Inspect(session, package);
            return new OnnxDecoderModel(session, spec, hasPositions, hasBranch, package.Io) { Device = device, DeviceNote = deviceNote, GraphNote = graphNote };
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs one step for <paramref name="batch"/> over <paramref name="store"/>. The logits of the rows that want them
    /// are written to <paramref name="logits"/>, <see cref="ModelSpec.VocabularySize"/> floats per position, in row order
    /// (<see cref="ForwardBatch.LogitRowCount"/> rows: a row's last position, or each of its positions for <see cref="RowLogits.All"/>).
    /// </summary>
    public void Forward(ForwardBatch batch, PagedKvStore store, Span<float> logits) => ForwardTimed(batch, store, logits);

    /// <summary>
    /// <see cref="Forward"/>, returning where the step's time went (for profiling; the timestamps cost nanoseconds).
    /// </summary>
    public StepTiming ForwardTimed(ForwardBatch batch, PagedKvStore store, Span<float> logits)
    {
        var start = Stopwatch.GetTimestamp();
        var rows = batch.RowCount;
        var vocab = Spec.VocabularySize;
        if (logits.Length < batch.LogitRowCount * vocab)
        {
            throw new ArgumentException("The logits buffer is too small for the rows that want logits.", nameof(logits));
        }

        if (NeedsSplit(batch))
        {
            return ForwardSplit(batch, store, logits);
        }

        // Same sequences, in the same order, each decoding one token: last step's present tensors are this step's past,
        // masks extended by one, and nothing is gathered. Any other batch is assembled from the pages.
        // Contiguous rows (GroupQueryAttention) have no holes to reuse around: every step gathers.
        var reuse = !_contiguousRows && CanReusePresent(batch);
        var decodeOnly = batch.MaxNewTokens == 1;
        int newLength, pastLength;
        if (reuse)
        {
            newLength = 1;
            pastLength = _lastTotalLength;
            FillDecodeInputsOverPresent(batch, rows, pastLength);
        }
        else
        {
            // A prefill batch leaves the decode batch's kept present alone: the next decode step may still reuse it.
            if (decodeOnly)
            {
                ReleasePresent();
            }

            newLength = batch.MaxNewTokens;
            pastLength = batch.MaxPastLength;
            FillTokenInputs(batch, rows, newLength, pastLength, pastLength + newLength);
            GatherPast(batch, store, rows, pastLength);
        }

        var totalLength = pastLength + newLength;
        var gathered = Stopwatch.GetTimestamp();

        var input = 0;
        var firstPast = 0;
        IDisposableReadOnlyCollection<OrtValue>? outputs = null;
        try
        {
            _inputs[input++] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _inputIds.AsMemory(0, rows * newLength), [rows, newLength]);
            _inputs[input++] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _mask.AsMemory(0, rows * totalLength), [rows, totalLength]);
            if (_hasPositionIds)
            {
                _inputs[input++] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _positions.AsMemory(0, rows * newLength), [rows, newLength]);
            }

            if (_hasUseCacheBranch)
            {
                _inputs[input++] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _useCacheBranch.AsMemory(), [1]);
            }

            if (_hasSeqlensK)
            {
                _inputs[input++] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _seqlensK.AsMemory(0, rows), [rows]);
            }

            if (_hasTotalSequenceLength)
            {
                _totalSequenceLength[0] = totalLength;
                _inputs[input++] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _totalSequenceLength.AsMemory(), []);
            }

            firstPast = input;
            for (var i = 0; reuse && i < Spec.KvLayers.Count; i++)
            {
                _inputs[input++] = _lastPresent![1 + (2 * i)];
                _inputs[input++] = _lastPresent[2 + (2 * i)];
            }

            for (var i = 0; !reuse && i < Spec.KvLayers.Count; i++)
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

            outputs = _session.Run(_runOptions, _inputNames, _inputs, _outputNames);
            var ran = Stopwatch.GetTimestamp();
            CopyLogits(batch, outputs[0].GetTensorDataAsSpan<float>(), newLength, logits);
            for (var i = 0; i < Spec.KvLayers.Count; i++)
            {
                var layer = Spec.KvLayers[i];
                ScatterPresent(batch, outputs[1 + (2 * i)], store.Keys[i], store.BlockSize, layer.KeyHeads, layer.KeyWidth, pastLength, totalLength);
                ScatterPresent(batch, outputs[2 + (2 * i)], store.Values[i], store.BlockSize, layer.ValueHeads, layer.ValueWidth, pastLength, totalLength);
            }

            if (decodeOnly && !_contiguousRows)
            {
                KeepPresent(batch, outputs, totalLength);
                outputs = null;
            }

            return new StepTiming(
                Stopwatch.GetElapsedTime(start, gathered).TotalMilliseconds,
                Stopwatch.GetElapsedTime(gathered, ran).TotalMilliseconds,
                Stopwatch.GetElapsedTime(ran).TotalMilliseconds);
        }
        catch
        {
            ReleasePresent();
            throw;
        }
        finally
        {
            outputs?.Dispose();
            for (var i = 0; i < input; i++)
            {
                // Past tensors borrowed from the last step's outputs are released with that collection, not here.
                if (!reuse || i < firstPast)
                {
                    _inputs[i].Dispose();
                }
            }
        }
    }

    /// <summary>Host memory: the engine sizes a fractional <c>--kv-cache-memory</c> from the process's available memory.</summary>
    public long? DeviceFreeMemory => null;

    /// <inheritdoc />
    public long? DeviceTotalMemory => null;

    /// <summary>Any block size: the host pages have no kernel constraint.</summary>
    public int ChooseBlockSize(int requested) => requested;

    /// <summary>A <see cref="DenseKvRunner"/>: host KV pages gathered into this graph's dense past tensors.</summary>
    public IModelRunner CreateRunner(int blockCount, int blockSize) => new DenseKvRunner(this, blockCount, blockSize);

    /// <inheritdoc />
    public void Dispose()
    {
        ReleasePresent();
        _runOptions.Dispose();
        _session.Dispose();
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

    private void GatherPast(ForwardBatch batch, PagedKvStore store, int rows, int pastLength)
    {
        for (var i = 0; i < Spec.KvLayers.Count; i++)
        {
            var layer = Spec.KvLayers[i];
            Grow(ref _pastKeys[i], rows * layer.KeyHeads * pastLength * layer.KeyWidth);
            Grow(ref _pastValues[i], rows * layer.ValueHeads * pastLength * layer.ValueWidth);
            for (var r = 0; r < rows; r++)
            {
                Gather(batch.BlockTable(r), batch.PastLength(r), store.Keys[i], store.BlockSize, layer.KeyHeads, layer.KeyWidth, _pastKeys[i].AsSpan(r * layer.KeyHeads * pastLength * layer.KeyWidth), pastLength);
                Gather(batch.BlockTable(r), batch.PastLength(r), store.Values[i], store.BlockSize, layer.ValueHeads, layer.ValueWidth, _pastValues[i].AsSpan(r * layer.ValueHeads * pastLength * layer.ValueWidth), pastLength);
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
