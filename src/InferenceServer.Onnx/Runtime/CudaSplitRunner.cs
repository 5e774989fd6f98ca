// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using System.Runtime.InteropServices;
using InferenceServer.Onnx.Attention;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Runs a <see cref="SplitDecoderModel"/> whose fp16/bf16 segments are sessions on a CUDA device (ADR 0005). Every
/// segment input and output is a device buffer at a fixed address bound through a <see cref="StepBinding"/>
/// (<see cref="DeviceTensorBuffer{T}"/>: views cached per shape, so a steady step rebinds nothing), so the residual stream,
/// the RoPE rows, q, k, v and the attention output stay on the device between segments; only the logit rows come back.
/// Attention runs on one of two kinds of memory device:
/// <list type="bullet">
/// <item><c>cpu</c>: q, k, v (and the MoH mask) are copied to the buffers' pinned host side, widened to fp32 for the
/// <see cref="IAttentionBackend"/>s (KV stored in the model's dtype), their outputs merged by log-sum-exp as in
/// <see cref="SplitRunner"/>, narrowed back and copied to the device.</item>
/// <item><c>cuda:N</c> with N the compute device (the local split): <see cref="CudaAttentionBackend"/> attends on the
/// device buffers themselves with the fused path's PagedAttention (a latent MLA model, which PagedAttention cannot
/// attend, with <see cref="LseAttentionBackend"/> instead); nothing crosses devices.</item>
/// <item><c>cuda:N</c> with N another GPU: the same, on N, with q, k, v (and the mask) copied C to N and the output (and
/// lse) N to C by peer copies per attention call (<see cref="PeerAttentionBuffers"/>).</item>
/// <item><c>cuda:N</c> beside <c>cpu</c> devices (mixed): the GPU's block range attends on the device with
/// <see cref="LseAttentionBackend"/> (output and log-sum-exp); when the step also has KV on the host, that part and its
/// lse come back, the host backends' parts merge into it, and the result goes back; a step whose KV is all on the GPU
/// copies nothing.</item>
/// </list>
/// Not thread-safe: the engine's scheduler loop is its only caller.
/// </summary>
internal sealed partial class CudaSplitRunner : IModelRunner, IOffloadingRunner
{
    private readonly SplitDecoderModel _model;
    private readonly bool _bf16;
    private readonly OrtMemoryInfo _deviceMemory;
    private readonly RunOptions _runOptions = new();
    private readonly StepBinding[] _bindings;
    private readonly DeviceTensorBuffer<long> _ids;
    private readonly DeviceTensorBuffer<long> _positions;
    private readonly DeviceTensorBuffer<long> _logitsIndices;
    private readonly DeviceTensorBuffer<ushort> _hiddenA;
    private readonly DeviceTensorBuffer<ushort> _hiddenB;
    private readonly DeviceTensorBuffer<ushort> _q;
    private readonly DeviceTensorBuffer<ushort> _k;
    private readonly DeviceTensorBuffer<ushort> _v;
    private readonly DeviceTensorBuffer<ushort> _ropeCos;
    private readonly DeviceTensorBuffer<ushort> _ropeSin;
    private readonly DeviceTensorBuffer<ushort> _attention;
    private readonly DeviceTensorBuffer<float> _headMask;
    private readonly PinnedTensorBuffer<float> _logits;
    private readonly CudaAttentionBackend? _cuda;
    private readonly LseAttentionBackend? _mixed;
    private readonly int _mixedIndex = -1;
    private readonly int[] _hostIndex = [];
    private readonly long[] _hostTicks = [];
    private readonly DeviceTensorBuffer<float>? _deviceLse;
    private readonly PeerAttentionBuffers? _peer;
    private readonly IAttentionBackend[] _hostBackends;
    private readonly CpuPagedAttention? _kernel;
    private readonly long[] _attentionTicks;
    private float[] _qFloat = [];
    private float[] _kFloat = [];
    private float[] _vFloat = [];
    private float[] _output = [];
    private float[] _lse = [];
    private float[] _partOutput = [];
    private float[] _partLse = [];
    private readonly int _maxQueryWidth;
    private readonly int _maxKvWidth;
    private readonly int _maxOutputWidth;
    private readonly int _maxHeads;

    /// <summary>
    /// Creates the device buffers and the attention backends over <paramref name="blockCount"/> global blocks: the CUDA
    /// backend's pools on the device, or host pools split evenly among the <c>cpu</c> devices in order.
    /// </summary>
    public CudaSplitRunner(SplitDecoderModel model, int blockCount, int blockSize)
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
        _bf16 = model.SegmentType == TensorElementType.BFloat16;
        var type = model.SegmentType;
        var device = model.DeviceId;
        _deviceMemory = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, device, OrtMemType.Default);
        _ids = new DeviceTensorBuffer<long>(device, _deviceMemory, TensorElementType.Int64, 256);
        _positions = new DeviceTensorBuffer<long>(device, _deviceMemory, TensorElementType.Int64, 256);
        _logitsIndices = new DeviceTensorBuffer<long>(device, _deviceMemory, TensorElementType.Int64, 64);
        _hiddenA = new DeviceTensorBuffer<ushort>(device, _deviceMemory, type, 1024);
        _hiddenB = new DeviceTensorBuffer<ushort>(device, _deviceMemory, type, 1024);
        _q = new DeviceTensorBuffer<ushort>(device, _deviceMemory, type, 1024);
        _k = new DeviceTensorBuffer<ushort>(device, _deviceMemory, type, 1024);
        _v = new DeviceTensorBuffer<ushort>(device, _deviceMemory, type, 1024);
        _ropeCos = new DeviceTensorBuffer<ushort>(device, _deviceMemory, type, 256);
        _ropeSin = new DeviceTensorBuffer<ushort>(device, _deviceMemory, type, 256);
        _attention = new DeviceTensorBuffer<ushort>(device, _deviceMemory, type, 1024);
        _headMask = new DeviceTensorBuffer<float>(device, _deviceMemory, TensorElementType.Float, 64);
        _logits = new PinnedTensorBuffer<float>(model.Spec.VocabularySize);
        _attentionTicks = new long[devices.Count];
        _bindings = new StepBinding[model.Segments.Count];
        for (var s = 0; s < _bindings.Length; s++)
        {
            _bindings[s] = new StepBinding(model.Segments[s]);
        }

        foreach (var spec in model.Attention)
        {
            _maxQueryWidth = Math.Max(_maxQueryWidth, spec.QueryWidth);
            _maxKvWidth = Math.Max(_maxKvWidth, spec.KvHeads * Math.Max(spec.KeyWidth, spec.ValueWidth));
            _maxOutputWidth = Math.Max(_maxOutputWidth, spec.OutputWidth);
            _maxHeads = Math.Max(_maxHeads, spec.QueryHeads);
        }

        // The GPU that holds the GPU pool (if any): the compute GPU, or another one reached by peer copies.
        var cudaIndex = IndexOfCuda(devices);
        var attentionGpu = cudaIndex < 0 ? device : devices[cudaIndex].Ordinal;

        try
        {
            if (attentionGpu != device)
            {
                _peer = new PeerAttentionBuffers(attentionGpu, type);
            }

            if (model.PagedAttentionOnGpu)
            {
                _hostBackends = [];
                _cuda = new CudaAttentionBackend(model.Attention, attentionGpu, type, blockCount, blockSize);
            }
            else if (model.CudaAttention)
            {
                // A latent (MLA) model alone on the GPU: PagedAttention has no latent form, the lse graph does.
                _hostBackends = [];
                _mixed = new LseAttentionBackend(model.Attention, attentionGpu, type, 0, blockCount, blockSize);
                _mixedIndex = 0;
                _deviceLse = new DeviceTensorBuffer<float>(device, _deviceMemory, TensorElementType.Float, 256);
            }
            else
            {
                // Each device's block range in order; the GPU's (if any) attends with the lse graph, the others on the host.
                _kernel = new CpuPagedAttention(model.Threads);
                var storage = _bf16 ? KvStorage.BFloat16 : KvStorage.Float16;
                var hosts = new List<IAttentionBackend>(devices.Count);
                var hostIndex = new List<int>(devices.Count);
                var first = 0;
                for (var i = 0; i < devices.Count; i++)
                {
                    var count = SplitDecoderModel.PoolBlocks(blockCount, devices.Count, i);
                    if (devices[i].IsCuda)
                    {
                        _mixed = new LseAttentionBackend(model.Attention, attentionGpu, type, first, count, blockSize);
                        _mixedIndex = i;
                    }
                    else
                    {
                        hosts.Add(new CpuAttentionBackend(model.Attention, first, count, blockSize, storage, _kernel));
                        hostIndex.Add(i);
                    }

                    first += count;
                }

                _hostBackends = [.. hosts];
                _hostIndex = [.. hostIndex];
                _hostTicks = new long[hosts.Count];
                if (_mixed is not null)
                {
                    _deviceLse = new DeviceTensorBuffer<float>(device, _deviceMemory, TensorElementType.Float, 256);
                }
            }
        }
        catch (InvalidOperationException ex) when (cudaIndex >= 0 && ex.Message.StartsWith("cudaMalloc", StringComparison.Ordinal))
        {
            // The GPU pool does not fit: say which device and what to lower (the startup turns this into exit 2).
            Dispose();
            var gpuBlocks = SplitDecoderModel.PoolBlocks(blockCount, devices.Count, cudaIndex);
            var mib = (double)gpuBlocks * blockSize * model.Spec.KvBytesPerToken / (1024 * 1024);
            throw new InvalidOperationException(
                $"--attention-device cuda:{attentionGpu}: the GPU's KV pool of {gpuBlocks} blocks ({mib:F0} MiB) does not fit in its free memory ({ex.Message}); "
                + "lower --kv-cache-memory (with several attention devices it is split evenly between them)", ex);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private static int IndexOfCuda(IReadOnlyList<ComputeDevice> devices)
    {
        for (var i = 0; i < devices.Count; i++)
        {
            if (devices[i].IsCuda)
            {
                return i;
            }
        }

        return -1;
    }

    /// <inheritdoc />
    public ModelSpec Spec => _model.Spec;

    /// <inheritdoc />
    public int BlockCount { get; }

    /// <inheritdoc />
    public int BlockSize { get; }

    /// <summary>Packed rows: decodes and prefill chunks run in one call.</summary>
    public bool RunsMixedBatches => true;

    /// <summary>Bytes of KV memory the attention backends hold.</summary>
    public long KvBytes
    {
        get
        {
            var bytes = (_cuda?.KvBytes ?? 0) + (_mixed?.KvBytes ?? 0);
            foreach (var backend in _hostBackends)
            {
                bytes += backend.KvBytes;
            }

            return bytes;
        }
    }

    /// <summary>
    /// Bytes the last step moved between the GPU and the memory devices: per attention call and token, q, k and v down and
    /// the output back, in the segments' dtype; 0 for the local split, whose attention reads the device buffers in place.
    /// </summary>
    public long LastStepOffloadBytes { get; private set; }

    /// <summary>Stopwatch ticks each attention device spent in the last step, in device order.</summary>
    public ReadOnlySpan<long> LastStepAttentionTicks => _attentionTicks;

    /// <inheritdoc />
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

        Pack(batch, tokens, logitRows);
        Reserve(tokens, logitRows, vocab);
        if (_cuda is not null)
        {
            _cuda.Plan(batch);
        }

        _mixed?.Plan(batch);

        // Whether any host pool holds some of the step's KV: read once, for every attention call of the step.
        var hostWork = false;
        foreach (var backend in _hostBackends)
        {
            backend.Plan(batch);
            hostWork |= backend.HasWork;
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
                if (_cuda is not null)
                {
                    AttendOnDevice(s - 1, spec, tokens);
                    offloadBytes += _peer is null ? 0 : SplitStep.OffloadBytes(spec, tokens, sizeof(ushort));
                }
                else if (_mixed is not null && !hostWork)
                {
                    // All of the step's KV is in the GPU's pool: its output is final and nothing crosses to the host.
                    AttendMixedOnDevice(s - 1, spec, tokens);
                    offloadBytes += _peer is null ? 0 : SplitStep.OffloadBytes(spec, tokens, sizeof(ushort));
                }
                else
                {
                    AttendOnHost(s - 1, spec, tokens);
                    offloadBytes += SplitStep.OffloadBytes(spec, tokens, sizeof(ushort));
                }
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

    /// <summary>Disposes the backends, the bindings, the device buffers and the run options.</summary>
    public void Dispose()
    {
        _cuda?.Dispose();
        _mixed?.Dispose();
        _deviceLse?.Dispose();
        _peer?.Dispose();
        foreach (var backend in _hostBackends ?? [])
        {
            backend?.Dispose();
        }

        _kernel?.Dispose();
        foreach (var binding in _bindings)
        {
            binding?.Dispose();
        }

        foreach (var buffer in (DeviceTensorBuffer<ushort>[])[_hiddenA, _hiddenB, _q, _k, _v, _ropeCos, _ropeSin, _attention])
        {
            buffer.Dispose();
        }

        _ids.Dispose();
        _positions.Dispose();
        _logitsIndices.Dispose();
        _headMask.Dispose();
        _logits.Dispose();
        _runOptions.Dispose();
        _deviceMemory.Dispose();
    }

    private void Pack(ForwardBatch batch, int tokens, int logitRows)
    {
        SplitStep.Pack(batch, BlockSize, _ids.Reserve(tokens), _positions.Reserve(tokens));
        batch.WriteLogitIndices(_logitsIndices.Reserve(Math.Max(1, logitRows)));
        _ids.Upload(tokens);
        _positions.Upload(tokens);
        _logitsIndices.Upload(logitRows);
    }

    private void Reserve(int tokens, int logitRows, int vocab)
    {
        // Every buffer is sized before the step binds any view: growing reallocates and drops the views.
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
        _peer?.Reserve(tokens, _maxQueryWidth, _maxKvWidth, _maxOutputWidth, _maxHeads);

        // The GPU pool's lse (the mixed placement's, and a latent model's alone on the GPU, which has no host backends).
        _deviceLse?.Reserve(tokens * _maxHeads);
        if (_hostBackends.Length > 0)
        {
            Grow(ref _qFloat, tokens * _maxQueryWidth);
            Grow(ref _kFloat, tokens * _maxKvWidth);
            Grow(ref _vFloat, tokens * _maxKvWidth);
            Grow(ref _output, tokens * _maxOutputWidth);
            Grow(ref _lse, tokens * _maxHeads);
            if (_hostBackends.Length > 1 || _mixed is not null)
            {
                Grow(ref _partOutput, tokens * _maxOutputWidth);
                Grow(ref _partLse, tokens * _maxHeads);
            }
        }
    }

    private void RunSegment(int s, int tokens, int logitRows, int vocab, DeviceTensorBuffer<ushort> hidden, DeviceTensorBuffer<ushort> next)
    {
        var calls = _model.Attention;
        var binding = _bindings[s];
        var width = _model.HiddenSize;
        var half = _model.RotaryHalfWidth;
        if (s == 0)
        {
            binding.Input("input_ids", _ids.View(tokens));
            binding.Input("position_ids", _positions.View(tokens));
        }
        else
        {
            binding.Input("hidden", hidden.View(tokens, width));
            binding.Input("attention", _attention.View(tokens, calls[s - 1].OutputWidth));
            if (s < calls.Count)
            {
                binding.Input("rope_cos", _ropeCos.View(tokens, half));
                binding.Input("rope_sin", _ropeSin.View(tokens, half));
            }
            else
            {
                binding.Input("logits_indices", _logitsIndices.View(logitRows));
            }
        }

        if (s == calls.Count)
        {
            binding.Output("logits", _logits.View(logitRows, vocab));
        }
        else
        {
            var spec = calls[s];
            binding.Output("hidden_out", next.View(tokens, width));
            binding.Output("q", _q.View(tokens, spec.QueryWidth));
            binding.Output("k", _k.View(tokens, spec.KvHeads * spec.KeyWidth));
            binding.Output("v", _v.View(tokens, spec.KvHeads * spec.ValueWidth));
            if (s == 0)
            {
                binding.Output("rope_cos", _ropeCos.View(tokens, half));
                binding.Output("rope_sin", _ropeSin.View(tokens, half));
            }

            if (spec.HeadMasked)
            {
                binding.Output("head_mask", _headMask.View(tokens, spec.QueryHeads));
            }
        }

        binding.Run(_runOptions);
    }

    private void AttendOnDevice(int call, AttentionLayerSpec spec, int tokens)
    {
        var start = Stopwatch.GetTimestamp();
        var (q, k, v, mask, output) = _peer is { } peer ? (peer.Q, peer.K, peer.V, peer.Mask, peer.Attention) : (_q, _k, _v, _headMask, _attention);
        _peer?.Send(spec, tokens, _q, _k, _v, _headMask);
        _cuda!.Attend(
            call,
            q.View(tokens, spec.QueryWidth),
            k.View(tokens, spec.KvHeads * spec.KeyWidth),
            v.View(tokens, spec.KvHeads * spec.ValueWidth),
            spec.HeadMasked ? mask.View(tokens, spec.QueryHeads) : null,
            output.View(tokens, spec.OutputWidth),
            _runOptions);
        _peer?.Receive(spec, tokens, _attention, null);
        _attentionTicks[0] += Stopwatch.GetTimestamp() - start;
    }

    private void AttendMixedOnDevice(int call, AttentionLayerSpec spec, int tokens)
    {
        if (!_mixed!.HasWork)
        {
            return;
        }

        var start = Stopwatch.GetTimestamp();
        if (_peer is { } peer)
        {
            peer.Send(spec, tokens, _q, _k, _v, _headMask);
            _mixed.Attend(call, peer.Q, peer.K, peer.V, spec.HeadMasked ? peer.Mask : null, peer.Attention, peer.Lse, tokens, _runOptions);
            peer.Receive(spec, tokens, _attention, _deviceLse);
        }
        else
        {
            _mixed.Attend(call, _q, _k, _v, spec.HeadMasked ? _headMask : null, _attention, _deviceLse!, tokens, _runOptions);
        }

        _attentionTicks[_mixedIndex] += Stopwatch.GetTimestamp() - start;
    }

    private void AttendOnHost(int call, AttentionLayerSpec spec, int tokens)
    {
        var q = _qFloat.AsSpan(0, tokens * spec.QueryWidth);
        var k = _kFloat.AsSpan(0, tokens * spec.KvHeads * spec.KeyWidth);
        var v = _vFloat.AsSpan(0, tokens * spec.KvHeads * spec.ValueWidth);
        Widen(_q.Download(q.Length), q);
        Widen(_k.Download(k.Length), k);
        Widen(_v.Download(v.Length), v);
        var mask = spec.HeadMasked ? _headMask.Download(tokens * spec.QueryHeads) : default;
        var output = _output.AsSpan(0, tokens * spec.OutputWidth);
        var lse = _lse.AsSpan(0, tokens * spec.QueryHeads);
        output.Clear();
        var merged = false;
        if (_mixed is { HasWork: true })
        {
            // The GPU's part first, on the device; its output and lse come back and the host parts merge into them.
            AttendMixedOnDevice(call, spec, tokens);
            Widen(_attention.Download(output.Length), output);
            _deviceLse!.Download(lse.Length).CopyTo(lse);
            merged = true;
        }
        else
        {
            lse.Fill(float.NegativeInfinity);
        }

        _hostTicks.AsSpan().Clear();
        SplitStep.Attend(_hostBackends, call, spec, q, k, v, mask, output, lse, _partOutput, _partLse, _hostTicks, merged);
        for (var b = 0; b < _hostTicks.Length; b++)
        {
            _attentionTicks[_hostIndex[b]] += _hostTicks[b];
        }

        Narrow(output, _attention.Reserve(output.Length));
        _attention.Upload(output.Length);
    }

    private void Widen(ReadOnlySpan<ushort> source, Span<float> destination) =>
        KvSimd.Convert(MemoryMarshal.AsBytes(source), destination, _bf16 ? KvStorage.BFloat16 : KvStorage.Float16);

    private void Narrow(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        if (_bf16)
        {
            for (var i = 0; i < source.Length; i++)
            {
                destination[i] = KvConvert.ToBFloat16(source[i]);
            }
        }
        else
        {
            var halves = MemoryMarshal.Cast<ushort, Half>(destination);
            for (var i = 0; i < source.Length; i++)
            {
                halves[i] = (Half)source[i];
            }
        }
    }

    private static void Grow(ref float[] array, int length)
    {
        if (length > array.Length)
        {
            Array.Resize(ref array, Math.Max(length, array.Length * 2));
        }
    }
}
