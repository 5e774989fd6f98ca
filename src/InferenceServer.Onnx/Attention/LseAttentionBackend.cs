// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using InferenceServer.Onnx.Runtime;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// A <c>cuda:N</c> attention device that shares a model's KV with other memory devices (ADR 0005): it holds the global
/// blocks [<see cref="FirstBlock"/>, + <see cref="BlockCount"/>) as per-layer pools on device N and attends with
/// <see cref="LseAttentionGraph"/> (standard ops), which returns the log-sum-exp that PagedAttention does not, so a
/// sequence whose blocks span this device and the host merges exactly (<see cref="AttentionMerge"/>). The step's plan
/// (<see cref="LseAttentionPlan"/>) is uploaded once and read by every layer; each layer runs the graph once per chunk of
/// rows (one for any decode step). With device -1 it runs the same graph on ONNX Runtime's CPU provider over host memory
/// (the unit tests). Not thread-safe: the split runner's step is its only caller.
/// </summary>
internal sealed class LseAttentionBackend : IDisposable
{
    /// <summary>The most bytes one chunk's gathered keys, values and scores may take on the device.</summary>
    public const long DefaultChunkBudgetBytes = 256L << 20;

    private readonly IReadOnlyList<AttentionLayerSpec> _layers;
    private readonly OrtMemoryInfo _memory;
    private readonly LayerPoolSessions? _layerSessions;
    private readonly LseAttentionPlan _plan;
    private readonly DeviceTensorBuffer<long> _appendRows;
    private readonly DeviceTensorBuffer<long> _appendSlots;
    private readonly DeviceTensorBuffer<long> _rowBlocks;
    private readonly DeviceTensorBuffer<float> _keyBias;
    private readonly List<OrtValue> _chunkViews = [];

    /// <summary>
    /// Creates the sessions and the zeroed pools of <paramref name="blockCount"/> blocks (global ids from
    /// <paramref name="firstBlock"/>) on CUDA device <paramref name="deviceId"/>, or in host memory with -1.
    /// </summary>
    /// <exception cref="InvalidOperationException">The device has no memory left for the pools (CUDA's error).</exception>
    /// <exception cref="ExecutionProviderException">The graph does not load on the device.</exception>
    /// <remarks>With <paramref name="stream"/>, the sessions run on it without a synchronization per call (a split step on one stream).</remarks>
    public LseAttentionBackend(IReadOnlyList<AttentionLayerSpec> layers, int deviceId, TensorElementType type, int firstBlock, int blockCount, int blockSize, long chunkBudgetBytes = DefaultChunkBudgetBytes, IntPtr stream = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        _layers = layers;
        FirstBlock = firstBlock;
        BlockCount = blockCount;
        BlockSize = blockSize;
        Type = type;
        Device = deviceId < 0 ? "cpu" : "cuda:" + deviceId.ToString(CultureInfo.InvariantCulture);
        _memory = deviceId < 0
            ? new OrtMemoryInfo(OrtMemoryInfo.allocatorCPU, OrtAllocatorType.DeviceAllocator, 0, OrtMemType.Default)
            : new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, deviceId, OrtMemType.Default);
        var elementBytes = type == TensorElementType.Float ? sizeof(float) : sizeof(ushort);
        long bytesPerKey = 1;
        foreach (var spec in layers)
        {
            // Gathered k and v in T, their fp32 copies and transposes, and three score-sized fp32 tensors per query head.
            bytesPerKey = Math.Max(bytesPerKey, ((long)spec.KvHeads * (spec.KeyWidth + spec.ValueWidth) * (elementBytes + 8)) + (12L * spec.QueryHeads));
        }

        _plan = new LseAttentionPlan(firstBlock, blockCount, blockSize, bytesPerKey, chunkBudgetBytes);
        _appendRows = new DeviceTensorBuffer<long>(deviceId, _memory, TensorElementType.Int64, 256);
        _appendSlots = new DeviceTensorBuffer<long>(deviceId, _memory, TensorElementType.Int64, 512);
        _rowBlocks = new DeviceTensorBuffer<long>(deviceId, _memory, TensorElementType.Int64, 4096);
        _keyBias = new DeviceTensorBuffer<float>(deviceId, _memory, TensorElementType.Float, 4096 * blockSize);
        try
        {
            _layerSessions = new LayerPoolSessions(
                layers, deviceId, _memory, type, blockCount, blockSize, spec => LseAttentionGraph.Create(spec, type),
                (LseAttentionGraph.KeyCache, LseAttentionGraph.KeyCacheOut), (LseAttentionGraph.ValueCache, LseAttentionGraph.ValueCacheOut), stream);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The memory device, as <c>--attention-device</c> names it (<c>cuda:N</c>; <c>cpu</c> in the tests).</summary>
    public string Device { get; }

    /// <summary>The global id of the first block here.</summary>
    public int FirstBlock { get; }

    /// <summary>Blocks here.</summary>
    public int BlockCount { get; }

    /// <summary>Tokens per block.</summary>
    public int BlockSize { get; }

    /// <summary>The element type of q, k, v, the pools and the output.</summary>
    public TensorElementType Type { get; }

    /// <summary>Bytes of KV memory the pools take.</summary>
    public long KvBytes => _layerSessions?.KvBytes ?? 0;

    /// <summary>Whether the step planned last stores or reads anything here.</summary>
    public bool HasWork => _plan.HasWork;

    /// <summary>Chunks of rows the step planned last runs per layer (1 unless a long prefill exceeds the chunk budget).</summary>
    public int ChunkCount => _plan.Chunks.Count;

    /// <summary>Plans <paramref name="batch"/> here and uploads the plan once for every layer.</summary>
    public void Plan(ForwardBatch batch)
    {
        _plan.Plan(batch);
        Upload(_appendRows, _plan.AppendRows);
        Upload(_appendSlots, _plan.AppendSlots);
        Upload(_rowBlocks, _plan.RowBlocks);
        Upload(_keyBias, _plan.KeyBias);
    }

    /// <summary>
    /// Attention call <paramref name="layer"/> over the step's <paramref name="tokens"/> rows: stores the k and v rows
    /// whose slots are here, then writes each row's attention over its keys here into <paramref name="output"/>
    /// ([T, heads x value_width], the model's dtype) and its log-sum-exp into <paramref name="lse"/> (fp32 [T, heads]).
    /// All buffers are on this backend's device; <paramref name="headMask"/> (fp32 [T, heads]) for MoH layers only.
    /// </summary>
    public void Attend<T>(int layer, DeviceTensorBuffer<T> q, DeviceTensorBuffer<T> k, DeviceTensorBuffer<T> v, DeviceTensorBuffer<float>? headMask, DeviceTensorBuffer<T> output, DeviceTensorBuffer<float> lse, int tokens, RunOptions runOptions)
        where T : unmanaged
    {
        var spec = _layers[layer];
        var binding = _layerSessions![layer];
        var chunks = _plan.Chunks;
        var appended = _plan.AppendCount;
        var blockSize = BlockSize;
        binding.Input(LseAttentionGraph.Key, k.View(tokens, spec.KvHeads * spec.KeyWidth));
        if (!spec.ValueIsKeyPrefix)
        {
            binding.Input(LseAttentionGraph.Value, v.View(tokens, spec.KvHeads * spec.ValueWidth));
        }

        try
        {
            for (var c = 0; c < chunks.Count; c++)
            {
                var chunk = chunks[c];

                // The first chunk stores the step's rows; the others store none (every chunk reads the stored pools).
                var append = c == 0 ? appended : 0;
                binding.Input(LseAttentionGraph.AppendRows, _appendRows.View(append));
                binding.Input(LseAttentionGraph.AppendSlots, _appendSlots.View(append, 2));
                binding.Input(LseAttentionGraph.Query, Part(q, (long)chunk.FirstRow * spec.QueryWidth, chunk.Rows, spec.QueryWidth));
                binding.Input(LseAttentionGraph.RowBlocks, Part(_rowBlocks, chunk.BlockOffset, chunk.Rows, chunk.Blocks));
                binding.Input(LseAttentionGraph.KeyBias, Part(_keyBias, chunk.BiasOffset, chunk.Rows, chunk.Blocks * blockSize));
                binding.Output(LseAttentionGraph.Output, Part(output, (long)chunk.FirstRow * spec.OutputWidth, chunk.Rows, spec.OutputWidth));
                binding.Output(LseAttentionGraph.Lse, Part(lse, (long)chunk.FirstRow * spec.QueryHeads, chunk.Rows, spec.QueryHeads));
                if (spec.HeadMasked)
                {
                    var mask = headMask ?? throw new ArgumentNullException(nameof(headMask));
                    binding.Input(LseAttentionGraph.HeadMask, Part(mask, (long)chunk.FirstRow * spec.QueryHeads, chunk.Rows, spec.QueryHeads));
                }

                binding.Run(runOptions);
            }
        }
        finally
        {
            foreach (var view in _chunkViews)
            {
                view.Dispose();
            }

            _chunkViews.Clear();
        }
    }

    /// <summary>Frees the pools, the bindings, the plan's buffers and the sessions.</summary>
    public void Dispose()
    {
        _layerSessions?.Dispose();
        _appendRows?.Dispose();
        _appendSlots?.Dispose();
        _rowBlocks?.Dispose();
        _keyBias?.Dispose();
        _memory.Dispose();
    }

    /// <summary>
    /// The [rows, width] view from element <paramref name="offset"/>: the buffer's cached view for the first chunk (every
    /// chunk of a one-chunk step), a new one (disposed after the call) for a later chunk.
    /// </summary>
    private OrtValue Part<T>(DeviceTensorBuffer<T> buffer, long offset, int rows, int width)
        where T : unmanaged
    {
        if (offset == 0)
        {
            return buffer.View(rows, width);
        }

        var view = buffer.ViewAt(offset, rows, width);
        _chunkViews.Add(view);
        return view;
    }

    private static void Upload<T>(DeviceTensorBuffer<T> buffer, ReadOnlySpan<T> values)
        where T : unmanaged
    {
        values.CopyTo(buffer.Reserve(Math.Max(1, values.Length)));
        buffer.Upload(values.Length);
    }
}
