// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Attention;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Runs a <see cref="SplitDecoderModel"/> (ADR 0005): a step packs every row's new tokens, runs segment 0, then per
/// attention call hands q, k, v to every backend that holds some of the step's KV (each appends the k, v rows whose slots
/// it owns and attends over its positions), merges the partial results of rows spread over several backends by their
/// log-sum-exp, and runs the next segment; the last returns the logit rows. Buffers are pinned arrays with cached
/// <see cref="OrtValue"/> views (<see cref="PinnedTensorBuffer{T}"/>), so a step whose shapes repeat creates no tensors.
/// Not thread-safe: the engine's scheduler loop is its only caller.
/// </summary>
internal sealed partial class SplitRunner : IModelRunner, IOffloadingRunner
{
    private readonly SplitDecoderModel _model;
    private readonly IAttentionBackend[] _backends;
    private readonly CpuPagedAttention _kernel;
    private readonly RunOptions _runOptions = new();
    private readonly PinnedTensorBuffer<long> _ids = new(256);
    private readonly PinnedTensorBuffer<long> _positions = new(256);
    private readonly PinnedTensorBuffer<long> _logitsIndices = new(64);
    private readonly PinnedTensorBuffer<float> _hiddenA = new(1024);
    private readonly PinnedTensorBuffer<float> _hiddenB = new(1024);
    private readonly PinnedTensorBuffer<float> _q = new(1024);
    private readonly PinnedTensorBuffer<float> _k = new(1024);
    private readonly PinnedTensorBuffer<float> _v = new(1024);
    private readonly PinnedTensorBuffer<float> _headMask = new(64);
    private readonly PinnedTensorBuffer<float> _ropeCos = new(256);
    private readonly PinnedTensorBuffer<float> _ropeSin = new(256);
    private readonly PinnedTensorBuffer<float> _attention = new(1024);
    private readonly PinnedTensorBuffer<float> _logits = new(1024);
    private readonly string[][] _inputNames;
    private readonly string[][] _outputNames;
    private readonly OrtValue[][] _inputs;
    private readonly OrtValue[][] _outputs;
    private readonly long[] _attentionTicks;
    private float[] _lse = [];
    private float[] _partOutput = [];
    private float[] _partLse = [];
    private int _maxQueryWidth;
    private int _maxKvWidth;
    private int _maxOutputWidth;
    private int _maxHeads;

    /// <summary>Creates the backends over <paramref name="blockCount"/> global blocks, split evenly among the model's attention devices in order.</summary>
    public SplitRunner(SplitDecoderModel model, int blockCount, int blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        var devices = model.AttentionDevices;
        if (blockCount < devices.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(blockCount), $"{blockCount} KV blocks cannot be spread over {devices.Count} attention devices.");
        }

        _model = model;
        BlockCount = blockCount;
        BlockSize = blockSize;
        _kernel = new CpuPagedAttention(model.Threads);
        _backends = new IAttentionBackend[devices.Count];
        var first = 0;
        for (var i = 0; i < devices.Count; i++)
        {
            var count = SplitDecoderModel.PoolBlocks(blockCount, devices.Count, i);
            _backends[i] = new CpuAttentionBackend(model.Attention, first, count, blockSize, KvStorage.Float32, _kernel);
            first += count;
        }

        foreach (var spec in model.Attention)
        {
            _maxQueryWidth = Math.Max(_maxQueryWidth, spec.QueryWidth);
            _maxKvWidth = Math.Max(_maxKvWidth, spec.KvHeads * Math.Max(spec.KeyWidth, spec.ValueWidth));
            _maxOutputWidth = Math.Max(_maxOutputWidth, spec.OutputWidth);
            _maxHeads = Math.Max(_maxHeads, spec.QueryHeads);
        }

        var segments = model.Segments.Count;
        _inputNames = new string[segments][];
        _outputNames = new string[segments][];
        _inputs = new OrtValue[segments][];
        _outputs = new OrtValue[segments][];
        _attentionTicks = new long[devices.Count];
        for (var s = 0; s < segments; s++)
        {
            var last = s == segments - 1;
            _inputNames[s] = s == 0 ? ["input_ids", "position_ids"] : last ? ["hidden", "attention", "logits_indices"] : ["hidden", "attention", "rope_cos", "rope_sin"];
            string[] outputs = last ? ["logits"] : ["hidden_out", "q", "k", "v"];
            if (!last && s == 0)
            {
                outputs = [.. outputs, "rope_cos", "rope_sin"];
            }

            if (!last && model.Attention[s].HeadMasked)
            {
                outputs = [.. outputs, "head_mask"];
            }

            _outputNames[s] = outputs;
            _inputs[s] = new OrtValue[_inputNames[s].Length];
            _outputs[s] = new OrtValue[outputs.Length];
        }
    }

    /// <inheritdoc />
    public ModelSpec Spec => _model.Spec;

    /// <inheritdoc />
    public int BlockCount { get; }

    /// <inheritdoc />
    public int BlockSize { get; }

    /// <summary>Packed rows: decodes and prefill chunks run in one call.</summary>
    public bool RunsMixedBatches => true;

    /// <summary>The backends, in block order.</summary>
    internal IReadOnlyList<IAttentionBackend> Backends => _backends;

    /// <summary>
    /// Bytes the last step sent to and brought back from the memory devices: per attention call and token, q, k and v
    /// out and the output back (ADR 0005's (2 + 2/G) x hidden x bytes for GQA).
    /// </summary>
    public long LastStepOffloadBytes { get; private set; }

    /// <summary>Stopwatch ticks each backend spent attending in the last step, in backend order.</summary>
    public ReadOnlySpan<long> LastStepAttentionTicks => _attentionTicks;

    /// <summary>Told each step's attention time per backend and bytes offloaded (the engine's metrics), or null.</summary>
    public IAttentionObserver? Observer { get; set; }

    /// <inheritdoc />
    public void Forward(ForwardBatch batch, Span<float> logits)
    {
        var tokens = batch.TokenCount;
        var logitRows = batch.LogitRowCount;
        var vocab = Spec.VocabularySize;
        if (logits.Length < logitRows * vocab)
        {
            throw new ArgumentException("The logits buffer is too small for the rows that want logits.", nameof(logits));
        }

        Pack(batch, tokens);
        Reserve(tokens, logitRows, vocab);
        foreach (var backend in _backends)
        {
            backend.Plan(batch);
        }

        _attentionTicks.AsSpan().Clear();
        long offloadBytes = 0;
        var calls = _model.Attention;
        var hidden = _hiddenA;
        var next = _hiddenB;
        for (var s = 0; s <= calls.Count; s++)
        {
            if (s > 0)
            {
                var spec = calls[s - 1];
                Attend(s - 1, spec, tokens);
                offloadBytes += SplitStep.OffloadBytes(spec, tokens, sizeof(float));
            }

            if (s < calls.Count || logitRows > 0)
            {
                // A step of prefill chunks that return no logits has written all its KV by now: the LM head is skipped.
                RunSegment(s, tokens, logitRows, vocab, hidden, next);
            }

            (hidden, next) = (next, hidden);
        }

        LastStepOffloadBytes = offloadBytes;
        SplitStep.Report(Observer, offloadBytes, _model.AttentionDeviceNames, _attentionTicks);

        _logits.Read(logitRows * vocab).CopyTo(logits);
    }

    /// <summary>Disposes the backends, the buffers' views and the run options.</summary>
    public void Dispose()
    {
        foreach (var backend in _backends)
        {
            backend?.Dispose();
        }

        _kernel.Dispose();
        _runOptions.Dispose();
        foreach (var buffer in (PinnedTensorBuffer<float>[])[_hiddenA, _hiddenB, _q, _k, _v, _headMask, _ropeCos, _ropeSin, _attention, _logits])
        {
            buffer.Dispose();
        }

        _ids.Dispose();
        _positions.Dispose();
        _logitsIndices.Dispose();
    }

    private void Pack(ForwardBatch batch, int tokens)
    {
        SplitStep.Pack(batch, BlockSize, _ids.Reserve(tokens), _positions.Reserve(tokens));
        batch.WriteLogitIndices(_logitsIndices.Reserve(Math.Max(1, batch.LogitRowCount)));
    }

    private void Reserve(int tokens, int logitRows, int vocab)
    {
        // Every buffer is sized before the step writes any: growing discards contents.
        _hiddenA.Reserve(tokens * _model.HiddenSize);
        _hiddenB.Reserve(tokens * _model.HiddenSize);
        _q.Reserve(tokens * _maxQueryWidth);
        _k.Reserve(tokens * _maxKvWidth);
        _v.Reserve(tokens * _maxKvWidth);
        _headMask.Reserve(tokens * _maxHeads);
        _ropeCos.Reserve(tokens * _model.RotaryHalfWidth);
        _ropeSin.Reserve(tokens * _model.RotaryHalfWidth);
        _attention.Reserve(tokens * _maxOutputWidth);
        _logits.Reserve(Math.Max(1, logitRows) * vocab);
        Grow(ref _lse, tokens * _maxHeads);
        if (_backends.Length > 1)
        {
            Grow(ref _partOutput, tokens * _maxOutputWidth);
            Grow(ref _partLse, tokens * _maxHeads);
        }
    }

    private void RunSegment(int s, int tokens, int logitRows, int vocab, PinnedTensorBuffer<float> hidden, PinnedTensorBuffer<float> next)
    {
        var calls = _model.Attention;
        var inputs = _inputs[s];
        var outputs = _outputs[s];
        var width = _model.HiddenSize;
        if (s == 0)
        {
            inputs[0] = _ids.View(tokens);
            inputs[1] = _positions.View(tokens);
        }
        else
        {
            inputs[0] = hidden.View(tokens, width);
            inputs[1] = _attention.View(tokens, calls[s - 1].OutputWidth);
            if (s < calls.Count)
            {
                inputs[2] = _ropeCos.View(tokens, _model.RotaryHalfWidth);
                inputs[3] = _ropeSin.View(tokens, _model.RotaryHalfWidth);
            }
            else
            {
                inputs[2] = _logitsIndices.View(logitRows);
            }
        }

        if (s == calls.Count)
        {
            outputs[0] = _logits.View(logitRows, vocab);
        }
        else
        {
            var spec = calls[s];
            outputs[0] = next.View(tokens, width);
            outputs[1] = _q.View(tokens, spec.QueryWidth);
            outputs[2] = _k.View(tokens, spec.KvHeads * spec.KeyWidth);
            outputs[3] = _v.View(tokens, spec.KvHeads * spec.ValueWidth);
            var o = 4;
            if (s == 0)
            {
                outputs[o++] = _ropeCos.View(tokens, _model.RotaryHalfWidth);
                outputs[o++] = _ropeSin.View(tokens, _model.RotaryHalfWidth);
            }

            if (spec.HeadMasked)
            {
                outputs[o] = _headMask.View(tokens, spec.QueryHeads);
            }
        }

        _model.Segments[s].Run(_runOptions, _inputNames[s], inputs, _outputNames[s], outputs);
    }

    private void Attend(int call, AttentionLayerSpec spec, int tokens)
    {
        var q = _q.Read(tokens * spec.QueryWidth);
        var k = _k.Read(tokens * spec.KvHeads * spec.KeyWidth);
        var v = _v.Read(tokens * spec.KvHeads * spec.ValueWidth);
        var mask = spec.HeadMasked ? _headMask.Read(tokens * spec.QueryHeads) : default;
        var output = _attention.Reserve(tokens * spec.OutputWidth);
        var lse = _lse.AsSpan(0, tokens * spec.QueryHeads);
        SplitStep.Attend(_backends, call, spec, q, k, v, mask, output, lse, _partOutput, _partLse, _attentionTicks);
    }

    private static void Grow(ref float[] array, int length)
    {
        if (length > array.Length)
        {
            Array.Resize(ref array, Math.Max(length, array.Length * 2));
        }
    }
}
