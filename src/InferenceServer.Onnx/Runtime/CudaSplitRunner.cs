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
/// The local split with PagedAttention on one stream runs its greedy decode steps as CUDA graphs when the model says so
/// (<see cref="SplitDecoderModel.CapturesSteps"/>, ADR 0011: <see cref="CapturedSteps"/>); other steps run uncaptured.
/// Not thread-safe: the engine's scheduler loop is its only caller.
/// </summary>
internal sealed partial class CudaSplitRunner : IModelRunner, IOffloadingRunner
{
    private readonly SplitDecoderModel _model;
    private readonly bool _bf16;
    private readonly OrtMemoryInfo _deviceMemory;
    private readonly RunOptions _runOptions = new();
    private readonly Lane[] _lanes;
    private readonly CudaAttentionBackend? _cuda;
    private readonly LseAttentionBackend? _mixed;
    private readonly int _mixedIndex = -1;
    private readonly int[] _hostIndex = [];
    private readonly DeviceTensorBuffer<float>? _deviceLse;
    private readonly PeerAttentionBuffers? _peer;
    private readonly IAttentionBackend[] _hostBackends;
    private readonly CpuPagedAttention? _kernel;
    private readonly PromptAttention? _prompt;
    private readonly long[] _attentionTicks;
    private readonly OverlapPolicy _policy;
    private readonly OverlapWorker? _worker;
    private readonly ForwardBatch[] _halves = [new(), new()];
    private readonly CapturedSteps? _captured;
    private int _lastSplit;
    private readonly int _maxQueryWidth;
    private readonly int _maxKvWidth;
    private readonly int _maxOutputWidth;
    private readonly int _maxHeads;

    /// <summary>
    /// Creates the device buffers and the attention backends, <paramref name="poolBlocks"/>[i] global blocks on attention
    /// device i in order: the CUDA backend's pools on the device, host pools for the <c>cpu</c> devices.
    /// </summary>
    public CudaSplitRunner(SplitDecoderModel model, IReadOnlyList<int> poolBlocks, int blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        var devices = model.AttentionDevices;
        PoolBlockCounts = SplitRunner.CheckPools(poolBlocks, devices.Count);
        var blockCount = PoolBlockCounts.Sum();

        _model = model;
        BlockCount = blockCount;
        BlockSize = blockSize;
        _bf16 = model.SegmentType == TensorElementType.BFloat16;
        var type = model.SegmentType;
        var device = model.DeviceId;
        _deviceMemory = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, device, OrtMemType.Default);
        _attentionTicks = new long[devices.Count];
        _policy = new OverlapPolicy(model.Overlap);
        if (model.Stream != IntPtr.Zero)
        {
            // One stream for the step (--split-one-stream): runs only queue their kernels; Forward synchronizes once.
            _runOptions.AddRunConfigEntry("disable_synchronize_execution_providers", "1");
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
        _lanes = [];
        _hostBackends = [];

        try
        {
            _lanes = [new Lane(this)];
            if (attentionGpu != device)
            {
                _peer = new PeerAttentionBuffers(attentionGpu, type);
            }

            if (model.PagedAttentionOnGpu)
            {
                _hostBackends = [];
                var capture = model.CapturesSteps && attentionGpu == device;
                if (capture)
                {
                    var rows = CapturedDecode.Bucket(model.CudaGraphMaxBatch);
                    var width = CapturedDecode.MaxWidth(model.Spec.ContextLength, blockSize);
                    _cuda = new CudaAttentionBackend(model.Attention, attentionGpu, type, blockCount, blockSize, model.Stream, padded: (rows, width));
                    _captured = new CapturedSteps(this, model.CudaGraphMaxBatch, width);
                }
                else
                {
                    _cuda = new CudaAttentionBackend(model.Attention, attentionGpu, type, blockCount, blockSize, model.Stream);
                }
            }
            else if (model.CudaAttention)
            {
                // A latent (MLA) model alone on the GPU: PagedAttention has no latent form, the lse graph does.
                _hostBackends = [];
                _mixed = new LseAttentionBackend(model.Attention, attentionGpu, type, 0, blockCount, blockSize, stream: model.Stream);
                _mixedIndex = 0;
                _deviceLse = new DeviceTensorBuffer<float>(device, _deviceMemory, TensorElementType.Float, 256);
            }
            else
            {
                // Each device's block range in order; the GPU's (if any) attends with the lse graph, the others on the host.
                _kernel = new CpuPagedAttention(model.Threads);
                // The segments' type, or --kv-cache-dtype's for host pools only (the model's spec carries it).
                var storage = model.Spec.ElementType.ToStorage();
                var hosts = new List<IAttentionBackend>(devices.Count);
                var hostIndex = new List<int>(devices.Count);
                var first = 0;
                for (var i = 0; i < devices.Count; i++)
                {
                    var count = PoolBlockCounts[i];
                    if (devices[i].IsCuda)
                    {
                        _mixed = new LseAttentionBackend(model.Attention, attentionGpu, type, first, count, blockSize, stream: model.Stream);
                        _mixedIndex = i;
                    }
                    else
                    {
                        hosts.Add(new CpuAttentionBackend(model.Attention, first, count, blockSize, storage, _kernel) { PromptRowMinTokens = model.PrefillMinTokens });
                        hostIndex.Add(i);
                    }

                    first += count;
                }

                _hostBackends = [.. hosts];
                _hostIndex = [.. hostIndex];
                // --prefill-attention compute (every attention device is cpu): fresh rows attend over themselves on this GPU.
                _prompt = model.PrefillOnCompute ? new PromptAttention(model.Attention, type, device, model.Stream) : null;
                if (_mixed is not null)
                {
                    _deviceLse = new DeviceTensorBuffer<float>(device, _deviceMemory, TensorElementType.Float, 256);
                }
            }

            _lanes[0].UseBackends(_hostBackends);
            if (_hostBackends.Length > 0 && _mixed is null && model.Overlap != AttentionOverlap.Off)
            {
                // Host attention only: a second lane (over the same pages) lets a step run as two micro-batches (ADR 0010).
                var shared = new IAttentionBackend[_hostBackends.Length];
                for (var i = 0; i < shared.Length; i++)
                {
                    shared[i] = new CpuAttentionBackend((CpuAttentionBackend)_hostBackends[i]);
                }

                _lanes = [_lanes[0], new Lane(this)];
                _lanes[1].UseBackends(shared);
                _worker = new OverlapWorker(AttendLane);
            }
        }
        catch (InvalidOperationException ex) when (cudaIndex >= 0 && ex.Message.StartsWith("cudaMalloc", StringComparison.Ordinal))
        {
            // The GPU pool does not fit: say which device and what to lower (the startup turns this into exit 2).
            Dispose();
            var gpuBlocks = PoolBlockCounts[cudaIndex];
            var mib = (double)gpuBlocks * blockSize * model.Spec.KvBytesPerToken / (1024 * 1024);
            throw new InvalidOperationException(
                $"--attention-device cuda:{attentionGpu}: the GPU's KV pool of {gpuBlocks} blocks ({mib:F0} MiB) does not fit in its free memory ({ex.Message}); "
                + "lower --kv-cache-memory (with several attention devices it is split evenly between them, or give one size per device: --kv-cache-memory 20g,64g)", ex);
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

    /// <summary>The blocks of each attention device's pool, in order.</summary>
    internal int[] PoolBlockCounts { get; }

    /// <inheritdoc />
    public int BlockSize { get; }

    /// <summary>Packed rows: decodes and prefill chunks run in one call.</summary>
    public bool RunsMixedBatches => true;

    /// <summary>
    /// A build whose last segment gives <c>next_tokens</c> brings back each row's argmax every step and the logits only
    /// when some row needs its distribution (as <see cref="PagedDeviceRunner"/> does); an older build, the logits always.
    /// </summary>
    public bool ReportsArgmax => _model.HasNextTokens;

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

    /// <summary>Whether the last step ran as two micro-batches (ADR 0010).</summary>
    internal bool LastStepOverlapped { get; private set; }

    /// <summary>Whether the last step ran through captured graphs (ADR 0011).</summary>
    internal bool LastStepCaptured { get; private set; }

    /// <summary>Step shapes (padded rows, table width) captured as graphs so far; 0 without capture.</summary>
    internal int CapturedShapes => _captured?.Captured ?? 0;

    /// <inheritdoc />
    public string? CaptureFailure => _captured?.Failure;

    /// <inheritdoc />
    public bool CapturesSteps => _captured is not null;

    /// <inheritdoc />
    public void Forward(ForwardBatch batch, Span<float> logits)
    {
        var logitRows = batch.LogitRowCount;
        var vocab = Spec.VocabularySize;
        var distributions = batch.DistributionsWanted || !ReportsArgmax;
        if (distributions && logits.Length < logitRows * vocab)
        {
            throw new ArgumentException("The logits buffer is too small for the rows that want logits.", nameof(logits));
        }

        var stepStart = Stopwatch.GetTimestamp();
        _attentionTicks.AsSpan().Clear();
        var overlap = _worker is not null && _policy.ShouldOverlap(batch.RowCount);
        var captured = !overlap && _captured is not null && _captured.Fits(batch);
        long denseTicks;
        long offloadBytes;
        if (captured)
        {
            denseTicks = _captured!.Run(batch, _cuda!, ref _attentionTicks[0]);
            WaitForStream();
            batch.SetArgmax(_captured.NextTokens(logitRows));
            offloadBytes = 0;
        }
        else if (overlap)
        {
            SplitStep.Cut(batch, ref _lastSplit, _halves);
            denseTicks = SplitStep.RunOverlapped(_lanes, _halves, _model.Attention.Count, _worker!, _attentionTicks);
            WaitForStream();
            if (ReportsArgmax)
            {
                var first = _halves[0].LogitRowCount;
                batch.SetArgmax(0, _lanes[0].NextTokens(first));
                batch.SetArgmax(first, _lanes[1].NextTokens(_halves[1].LogitRowCount));
            }

            if (distributions)
            {
                SplitStep.CopyLogits(_lanes, _halves, logits, vocab);
            }

            offloadBytes = _lanes[0].OffloadBytes + _lanes[1].OffloadBytes;
        }
        else
        {
            (denseTicks, offloadBytes) = ForwardSequential(batch);
            WaitForStream();
            if (ReportsArgmax)
            {
                batch.SetArgmax(_lanes[0].NextTokens(logitRows));
            }

            if (distributions)
            {
                _lanes[0].Logits(logitRows * vocab).CopyTo(logits);
            }
        }

        LastStepOverlapped = overlap;
        LastStepCaptured = captured;
        LastStepOffloadBytes = offloadBytes;
        SplitStep.Finish(_policy, Observer, _model.AttentionDeviceNames, _attentionTicks, offloadBytes, overlap, stepStart, denseTicks, _worker);
    }

    /// <summary>Disposes the backends, the lanes, the device buffers and the run options.</summary>
    public void Dispose()
    {
        _worker?.Dispose();
        _captured?.Dispose();
        _cuda?.Dispose();
        _mixed?.Dispose();
        _deviceLse?.Dispose();
        _peer?.Dispose();
        foreach (var lane in _lanes ?? [])
        {
            lane?.Dispose();
        }

        foreach (var backend in _hostBackends ?? [])
        {
            backend?.Dispose();
        }

        _kernel?.Dispose();
        _prompt?.Dispose();
        _runOptions.Dispose();
        _deviceMemory.Dispose();
    }

    /// <summary>One micro-batch (lane 0): segments and attention take turns. Returns the dense ticks and the bytes offloaded.</summary>
    private (long Dense, long OffloadBytes) ForwardSequential(ForwardBatch batch)
    {
        var lane = _lanes[0];
        lane.Begin(batch);
        var tokens = lane.Tokens;
        _cuda?.Plan(batch);
        _mixed?.Plan(batch);

        // Whether any host pool holds some of the step's KV: read once, for every attention call of the step.
        var hostWork = false;
        foreach (var backend in _hostBackends)
        {
            hostWork |= backend.HasWork;
        }

        _peer?.Reserve(tokens, _maxQueryWidth, _maxKvWidth, _maxOutputWidth, _maxHeads);

        // The GPU pool's lse (the mixed placement's, and a latent model's alone on the GPU, which has no host backends).
        _deviceLse?.Reserve(tokens * _maxHeads);
        long offloadBytes = 0;
        long dense = 0;
        var calls = _model.Attention;
        for (var s = 0; s <= calls.Count; s++)
        {
            if (s > 0)
            {
                var spec = calls[s - 1];
                if (_cuda is not null)
                {
                    AttendOnDevice(lane, s - 1, spec, tokens);
                    offloadBytes += _peer is null ? 0 : SplitStep.OffloadBytes(spec, tokens, sizeof(ushort));
                }
                else if (_mixed is not null && !hostWork)
                {
                    // All of the step's KV is in the GPU's pool: its output is final and nothing crosses to the host.
                    AttendMixedOnDevice(lane, s - 1, spec, tokens);
                    offloadBytes += _peer is null ? 0 : SplitStep.OffloadBytes(spec, tokens, sizeof(ushort));
                }
                else
                {
                    lane.SendToHost(s - 1);
                    var merged = false;
                    if (_mixed is { HasWork: true })
                    {
                        // The GPU's part first, on the device; its output and lse come back and the host parts merge into them.
                        AttendMixedOnDevice(lane, s - 1, spec, tokens);
                        lane.TakeDevicePart(spec, _deviceLse!);
                        merged = true;
                    }

                    lane.AttendOnHost(s - 1, merged, _attentionTicks);
                    lane.ReturnFromHost(s - 1);
                    offloadBytes += SplitStep.OffloadBytes(spec, tokens, sizeof(ushort));
                }
            }

            dense += lane.RunSegment(s);
        }

        return (dense, offloadBytes);
    }

    /// <summary>With one stream for the step (<c>--split-one-stream</c>), waits for its queued work: the logits are then in their pinned buffer.</summary>
    private void WaitForStream()
    {
        if (_model.Stream != IntPtr.Zero)
        {
            CudaRuntime.SynchronizeStream(_model.Stream);
        }
    }

    /// <summary>The worker's item: host attention call <paramref name="call"/> of lane <paramref name="lane"/>, timed into the lane.</summary>
    private void AttendLane(int lane, int call) => _lanes[lane].AttendOnHost(call, merged: false, ticks: null);

    private void AttendOnDevice(Lane lane, int call, AttentionLayerSpec spec, int tokens)
    {
        var start = Stopwatch.GetTimestamp();
        var (q, k, v, mask, output) = _peer is { } peer ? (peer.Q, peer.K, peer.V, peer.Mask, peer.Attention) : (lane.Q, lane.K, lane.V, lane.HeadMask, lane.Attention);
        _peer?.Send(spec, tokens, lane.Q, lane.K, lane.V, lane.HeadMask);
        _cuda!.Attend(
            call,
            q.View(tokens, spec.QueryWidth),
            k.View(tokens, spec.KvHeads * spec.KeyWidth),
            v.View(tokens, spec.KvHeads * spec.ValueWidth),
            spec.HeadMasked ? mask.View(tokens, spec.QueryHeads) : null,
            output.View(tokens, spec.OutputWidth),
            _runOptions);
        _peer?.Receive(spec, tokens, lane.Attention, null);
        _attentionTicks[0] += Stopwatch.GetTimestamp() - start;
    }

    private void AttendMixedOnDevice(Lane lane, int call, AttentionLayerSpec spec, int tokens)
    {
        if (!_mixed!.HasWork)
        {
            return;
        }

        var start = Stopwatch.GetTimestamp();
        if (_peer is { } peer)
        {
            peer.Send(spec, tokens, lane.Q, lane.K, lane.V, lane.HeadMask);
            _mixed.Attend(call, peer.Q, peer.K, peer.V, spec.HeadMasked ? peer.Mask : null, peer.Attention, peer.Lse, tokens, _runOptions);
            peer.Receive(spec, tokens, lane.Attention, _deviceLse);
        }
        else
        {
            _mixed.Attend(call, lane.Q, lane.K, lane.V, spec.HeadMasked ? lane.HeadMask : null, lane.Attention, _deviceLse!, tokens, _runOptions);
        }

        _attentionTicks[_mixedIndex] += Stopwatch.GetTimestamp() - start;
    }

    private void Widen(ReadOnlySpan<ushort> source, Span<float> destination) =>
        KvSimd.Convert(MemoryMarshal.AsBytes(source), destination, HalfStorage);

    /// <summary>The segments' 16-bit type.</summary>
    private KvStorage HalfStorage => _bf16 ? KvStorage.BFloat16 : KvStorage.Float16;

    private void Narrow(ReadOnlySpan<float> source, Span<ushort> destination) =>
        KvConvert.Narrow(source, destination, HalfStorage);

    private static void Grow(ref float[] array, int length)
    {
        if (length > array.Length)
        {
            Array.Resize(ref array, Math.Max(length, array.Length * 2));
        }
    }
}
