// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using InferenceServer.Onnx.Runtime;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// The <c>cuda:N</c> attention backend (ADR 0005): every attention layer's key and value pools
/// (<c>[blocks, block_size, kv_heads, d]</c>, fp16 or bf16) allocated once and zeroed on CUDA device N, and attention run
/// by ONNX Runtime on N with the fused paged path's kernel: one small <see cref="PagedAttentionGraph"/> session per
/// distinct layer shape, one <see cref="StepBinding"/> per layer with that layer's pools bound as the aliased input and
/// output, exactly as <see cref="PagedDeviceRunner"/> binds them. q, k, v and the output are device tensors of the split
/// runner (no host round trip). It holds every block of the KV-cache manager (a sequence never spans it and another
/// backend: PagedAttention returns no log-sum-exp, see ADR 0005), so its block ids are the global ones. With
/// <c>padded</c> the pools hold one block more, which no sequence owns: padding rows of captured steps (ADR 0011)
/// write their one key there, and such steps read their row offsets, past lengths and block tables from buffers of
/// their own that never move (<see cref="PlanPadded"/>), since a captured graph reads the addresses it was captured with.
/// Not thread-safe: the split runner's step is its only caller.
/// </summary>
internal sealed class CudaAttentionBackend : IDisposable
{
    private readonly IReadOnlyList<AttentionLayerSpec> _layers;
    private readonly OrtMemoryInfo _memory;
    private readonly LayerPoolSessions? _layerSessions;
    private readonly DeviceTensorBuffer<int> _cumulative;
    private readonly DeviceTensorBuffer<int> _past;
    private readonly DeviceTensorBuffer<int> _blockTable;
    private readonly PinnedTensorBuffer<int> _metadata = new(2);
    private readonly DeviceTensorBuffer<int>? _paddedCumulative;
    private readonly DeviceTensorBuffer<int>? _paddedPast;
    private readonly DeviceTensorBuffer<int>? _paddedTable;
    private OrtValue? _stepCumulative;
    private OrtValue? _stepPast;
    private OrtValue? _stepTable;
    private OrtValue? _stepMetadata;

    /// <summary>Creates the sessions and the zeroed pools of <paramref name="blockCount"/> blocks on CUDA device <paramref name="deviceId"/>.</summary>
    /// <exception cref="InvalidOperationException">The device has no memory left for the pools (CUDA's error).</exception>
    /// <remarks>
    /// With <paramref name="stream"/>, the sessions run on it without a synchronization per call (a split step on one
    /// stream). With <paramref name="padded"/> (rows, table width) the pools get the scratch block
    /// (<see cref="ScratchBlock"/>) and the backend the fixed buffers of captured steps of up to that many rows and blocks
    /// per row (ADR 0011).
    /// </remarks>
    public CudaAttentionBackend(IReadOnlyList<AttentionLayerSpec> layers, int deviceId, TensorElementType type, int blockCount, int blockSize, IntPtr stream = default, (int Rows, int Width)? padded = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        _layers = layers;
        DeviceId = deviceId;
        BlockCount = blockCount;
        BlockSize = blockSize;
        Device = "cuda:" + deviceId.ToString(CultureInfo.InvariantCulture);
        _memory = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, deviceId, OrtMemType.Default);
        _cumulative = new DeviceTensorBuffer<int>(deviceId, _memory, TensorElementType.Int32, 257);
        _past = new DeviceTensorBuffer<int>(deviceId, _memory, TensorElementType.Int32, 256);
        _blockTable = new DeviceTensorBuffer<int>(deviceId, _memory, TensorElementType.Int32, 4096);
        try
        {
            if (padded is var (rows, width))
            {
                _paddedCumulative = new DeviceTensorBuffer<int>(deviceId, _memory, TensorElementType.Int32, rows + 1);
                _paddedPast = new DeviceTensorBuffer<int>(deviceId, _memory, TensorElementType.Int32, rows);
                _paddedTable = new DeviceTensorBuffer<int>(deviceId, _memory, TensorElementType.Int32, rows * width);
            }

            _layerSessions = new LayerPoolSessions(
                layers, deviceId, _memory, type, blockCount + (padded is null ? 0 : 1), blockSize, spec => PagedAttentionGraph.Create(spec, type),
                (PagedAttentionGraph.KeyCache, PagedAttentionGraph.KeyCacheOut), (PagedAttentionGraph.ValueCache, PagedAttentionGraph.ValueCacheOut), stream);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The memory device, as <c>--attention-device</c> names it (<c>cuda:N</c>).</summary>
    public string Device { get; }

    /// <summary>The CUDA device ordinal.</summary>
    public int DeviceId { get; }

    /// <summary>Blocks of the pools (all of the KV-cache manager's).</summary>
    public int BlockCount { get; }

    /// <summary>Tokens per block.</summary>
    public int BlockSize { get; }

    /// <summary>Bytes of KV memory the pools take on the device.</summary>
    public long KvBytes => _layerSessions?.KvBytes ?? 0;

    /// <summary>The block padding rows of captured steps write to (the pools' last, which the engine never hands out).</summary>
    public int ScratchBlock => BlockCount;

    /// <summary>Uploads <paramref name="batch"/>'s row offsets, past lengths and block tables once per step (every layer reads them).</summary>
    public void Plan(ForwardBatch batch)
    {
        var rows = batch.RowCount;
        var maxBlocks = 1;
        var longest = 0;
        for (var r = 0; r < rows; r++)
        {
            maxBlocks = Math.Max(maxBlocks, batch.BlockTable(r).Length);
            longest = Math.Max(longest, batch.PastLength(r) + batch.Tokens(r).Length);
        }

        var cumulative = _cumulative.Reserve(rows + 1);
        var past = _past.Reserve(rows);
        var table = _blockTable.Reserve(rows * maxBlocks);
        table.Clear();
        cumulative[0] = 0;
        for (var r = 0; r < rows; r++)
        {
            batch.BlockTable(r).CopyTo(table.Slice(r * maxBlocks));
            past[r] = batch.PastLength(r);
            cumulative[r + 1] = cumulative[r] + batch.Tokens(r).Length;
        }

        _cumulative.Upload(rows + 1);
        _past.Upload(rows);
        _blockTable.Upload(rows * maxBlocks);
        var bounds = _metadata.Reserve(2);
        bounds[0] = batch.MaxNewTokens;
        bounds[1] = longest;
        _stepCumulative = _cumulative.View(rows + 1);
        _stepPast = _past.View(rows);
        _stepTable = _blockTable.View(rows, maxBlocks);
        _stepMetadata = _metadata.View(2);
    }

    /// <summary>
    /// Plans a captured decode step (ADR 0011): <paramref name="batch"/>'s one-token rows, then padding rows up to
    /// <paramref name="padded"/> that decode at position 0 into <see cref="ScratchBlock"/>, every table row
    /// <paramref name="width"/> blocks wide, in the fixed buffers a replay reads; <paramref name="bounds"/> is the shape's
    /// <c>attention_metadata</c> (one new token; <paramref name="width"/> blocks of keys), fixed per shape.
    /// </summary>
    public void PlanPadded(ForwardBatch batch, int padded, int width, OrtValue bounds)
    {
        CapturedDecode.FillPadded(batch, padded, width, ScratchBlock, _paddedCumulative!.Reserve(padded + 1), _paddedPast!.Reserve(padded), _paddedTable!.Reserve(padded * width));
        _paddedCumulative.Upload(padded + 1);
        _paddedPast.Upload(padded);
        _paddedTable.Upload(padded * width);
        _stepCumulative = _paddedCumulative.View(padded + 1);
        _stepPast = _paddedPast.View(padded);
        _stepTable = _paddedTable.View(padded, width);
        _stepMetadata = bounds;
    }

    /// <summary>
    /// Attention call <paramref name="layer"/>: appends the step's <paramref name="k"/>, <paramref name="v"/> rows to the
    /// layer's pools at the planned rows' positions and writes the causal attention of <paramref name="q"/> over each row's
    /// cache into <paramref name="output"/>; all device tensors of the step's token count (<paramref name="headMask"/>,
    /// fp32 [T, heads], for MoH layers only).
    /// </summary>
    public void Attend(int layer, OrtValue q, OrtValue k, OrtValue v, OrtValue? headMask, OrtValue output, RunOptions runOptions)
    {
        var binding = _layerSessions![layer];
        binding.Input(PagedAttentionGraph.Query, q);
        binding.Input(PagedAttentionGraph.Key, k);
        if (!_layers[layer].ValueIsKeyPrefix)
        {
            // A latent layer's graph has no value input: its value is the key's prefix (PagedAttentionGraph.CreateLatent).
            binding.Input(PagedAttentionGraph.Value, v);
        }

        binding.Input(PagedAttentionGraph.CumulativeSequenceLength, _stepCumulative!);
        binding.Input(PagedAttentionGraph.PastSequenceLengths, _stepPast!);
        binding.Input(PagedAttentionGraph.BlockTable, _stepTable!);
        binding.Input(PagedAttentionGraph.AttentionMetadata, _stepMetadata!);
        if (_layers[layer].HeadMasked)
        {
            binding.Input(PagedAttentionGraph.HeadMask, headMask ?? throw new ArgumentNullException(nameof(headMask)));
        }

        binding.Output(PagedAttentionGraph.Output, output);
        binding.Run(runOptions);
    }

    /// <summary>Frees the pools, the bindings and the sessions.</summary>
    public void Dispose()
    {
        _layerSessions?.Dispose();
        _cumulative?.Dispose();
        _past?.Dispose();
        _blockTable?.Dispose();
        _paddedCumulative?.Dispose();
        _paddedPast?.Dispose();
        _paddedTable?.Dispose();
        _metadata.Dispose();
        _memory.Dispose();
    }
}
