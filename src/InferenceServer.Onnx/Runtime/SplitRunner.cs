// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using InferenceServer.Onnx.Attention;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Runs a <see cref="SplitDecoderModel"/> (ADR 0005): a step packs every row's new tokens, runs segment 0, then per
/// attention call hands q, k, v to every backend that holds some of the step's KV (each appends the k, v rows whose slots
/// it owns and attends over its positions), merges the partial results of rows spread over several backends by their
/// log-sum-exp, and runs the next segment; the last returns the logit rows. Buffers are pinned arrays with cached
/// <see cref="OrtValue"/> views (<see cref="PinnedTensorBuffer{T}"/>), so a step whose shapes repeat creates no tensors.
/// With overlap (ADR 0010) a step of two or more rows runs as two micro-batches (<see cref="Lane"/>s): while the
/// <see cref="OverlapWorker"/> attends for one, this thread runs the other's next segment.
/// Not thread-safe: the engine's scheduler loop is its only caller.
/// </summary>
internal sealed partial class SplitRunner : IModelRunner, IOffloadingRunner
{
    private readonly SplitDecoderModel _model;
    private readonly IAttentionBackend[] _backends;
    private readonly CpuPagedAttention _kernel;
    private readonly RunOptions _runOptions = new();
    private readonly Lane[] _lanes;
    private readonly OverlapPolicy _policy;
    private readonly OverlapWorker? _worker;
    private readonly ForwardBatch[] _halves = [new(), new()];
    private int _lastSplit;
    private readonly long[] _attentionTicks;
    private readonly PromptAttention? _prompt;

    /// <summary>Creates the backends, <paramref name="poolBlocks"/>[i] global blocks on the model's attention device i, in order.</summary>
    public SplitRunner(SplitDecoderModel model, IReadOnlyList<int> poolBlocks, int blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        var devices = model.AttentionDevices;
        PoolBlockCounts = CheckPools(poolBlocks, devices.Count);

        _model = model;
        BlockCount = PoolBlockCounts.Sum();
        BlockSize = blockSize;
        _kernel = new CpuPagedAttention(model.Threads);
        var backends = new CpuAttentionBackend[devices.Count];
        var first = 0;
        for (var i = 0; i < devices.Count; i++)
        {
            var count = PoolBlockCounts[i];
            backends[i] = new CpuAttentionBackend(model.Attention, first, count, blockSize, model.Spec.ElementType.ToStorage(), _kernel)
            {
                PromptRowMinTokens = model.PrefillMinTokens,
            };
            first += count;
        }

        _backends = backends;
        _attentionTicks = new long[devices.Count];
        // --prefill-attention compute: fresh rows attend over themselves through ONNX Runtime on this (CPU) compute device.
        _prompt = model.PrefillOnCompute ? new PromptAttention(model.Attention, TensorElementType.Float, -1, IntPtr.Zero) : null;
        _policy = new OverlapPolicy(model.Overlap);
        if (model.Overlap == AttentionOverlap.Off)
        {
            _lanes = [new Lane(this, _backends)];
        }
        else
        {
            // The second lane plans its own rows over the same pages.
            var shared = new IAttentionBackend[backends.Length];
            for (var i = 0; i < shared.Length; i++)
            {
                shared[i] = new CpuAttentionBackend(backends[i]);
            }

            _lanes = [new Lane(this, _backends), new Lane(this, shared)];
            _worker = new OverlapWorker(AttendLane);
        }
    }

    /// <inheritdoc />
    public ModelSpec Spec => _model.Spec;

    /// <inheritdoc />
    public int BlockCount { get; }

    /// <summary>The blocks of each attention device's pool, in order.</summary>
    internal int[] PoolBlockCounts { get; }

    /// <summary>A copy of <paramref name="poolBlocks"/>, one positive count per attention device, whose sum fits an int.</summary>
    internal static int[] CheckPools(IReadOnlyList<int> poolBlocks, int devices)
    {
        ArgumentNullException.ThrowIfNull(poolBlocks);
        if (poolBlocks.Count != devices)
        {
            throw new ArgumentException($"{poolBlocks.Count} pool sizes for {devices} attention devices.", nameof(poolBlocks));
        }

        long total = 0;
        foreach (var count in poolBlocks)
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count, nameof(poolBlocks));
            total += count;
        }

        ArgumentOutOfRangeException.ThrowIfGreaterThan(total, int.MaxValue, nameof(poolBlocks));
        return [.. poolBlocks];
    }

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

    /// <summary>Whether the last step ran as two micro-batches (ADR 0010).</summary>
    internal bool LastStepOverlapped { get; private set; }

    /// <summary>Told each step's attention time per backend and bytes offloaded (the engine's metrics), or null.</summary>
    public IAttentionObserver? Observer { get; set; }

    /// <inheritdoc />
    public void Forward(ForwardBatch batch, Span<float> logits)
    {
        var logitRows = batch.LogitRowCount;
        var vocab = Spec.VocabularySize;
        if (logits.Length < logitRows * vocab)
        {
            throw new ArgumentException("The logits buffer is too small for the rows that want logits.", nameof(logits));
        }

        var stepStart = Stopwatch.GetTimestamp();
        _attentionTicks.AsSpan().Clear();
        var overlap = _worker is not null && _policy.ShouldOverlap(batch.RowCount);
        long denseTicks;
        if (overlap)
        {
            SplitStep.Cut(batch, ref _lastSplit, _halves);
            denseTicks = SplitStep.RunOverlapped(_lanes, _halves, _model.Attention.Count, _worker!, _attentionTicks);
            SplitStep.CopyLogits(_lanes, _halves, logits, vocab);
        }
        else
        {
            denseTicks = ForwardSequential(batch);
            _lanes[0].Logits(logitRows * vocab).CopyTo(logits);
        }

        LastStepOverlapped = overlap;
        LastStepOffloadBytes = _lanes[0].OffloadBytes + (overlap ? _lanes[1].OffloadBytes : 0);
        SplitStep.Finish(_policy, Observer, _model.AttentionDeviceNames, _attentionTicks, LastStepOffloadBytes, overlap, stepStart, denseTicks, _worker);
    }

    /// <summary>Disposes the backends, the buffers' views and the run options.</summary>
    public void Dispose()
    {
        _worker?.Dispose();
        foreach (var lane in _lanes ?? [])
        {
            lane.Dispose();
        }

        _kernel.Dispose();
        _prompt?.Dispose();
        _runOptions.Dispose();
    }

    /// <summary>One micro-batch: segments and attention take turns. Returns the dense segments' ticks.</summary>
    private long ForwardSequential(ForwardBatch batch)
    {
        var lane = _lanes[0];
        lane.Begin(batch);
        long dense = 0;
        var calls = _model.Attention.Count;
        for (var s = 0; s <= calls; s++)
        {
            if (s > 0)
            {
                lane.Attend(s - 1, _attentionTicks);
                lane.ReturnFromHost(s - 1);
            }

            dense += lane.RunSegment(s);
        }

        return dense;
    }

    /// <summary>The worker's item: attention call <paramref name="call"/> of lane <paramref name="lane"/>, timed into the lane.</summary>
    private void AttendLane(int lane, int call) => _lanes[lane].Attend(call, null);
}
