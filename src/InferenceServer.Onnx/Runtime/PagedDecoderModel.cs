// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Packaging;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// A paged decoder graph (ADR 0003, <c>inferenceserver.graph = paged-v1</c>): packed tokens of every row in one
/// dimension, one <c>com.microsoft.PagedAttention</c> node per layer over <c>key_cache.{i}</c> / <c>value_cache.{i}</c>
/// block pools addressed by <c>block_table</c>, logits only for <c>logits_indices</c> and their argmax as
/// <c>next_tokens</c>. It runs on the CUDA execution provider only; <see cref="PagedDeviceRunner"/> keeps the pools on the device.
/// </summary>
internal sealed class PagedDecoderModel : IDecoderModel
{
    internal const string InputIds = "input_ids";
    internal const string CumulativeSequenceLength = "cumulative_sequence_length";
    internal const string PastSequenceLengths = "past_seqlens";
    internal const string BlockTable = "block_table";
    internal const string LogitsIndices = "logits_indices";
    internal const string Logits = "logits";
    internal const string NextTokens = "next_tokens";
    internal const string AttentionMetadata = "attention_metadata";

    /// <summary>The builder's name for this graph convention (<c>inferenceserver.graph</c> / genai_config's <c>inference_server.graph</c>).</summary>
    internal const string GraphKind = "paged-v1";

    private PagedDecoderModel(InferenceSession session, ModelSpec spec, TensorElementType kvType, ComputeDevice device, string? deviceNote, bool cudaGraphs)
    {
        CudaGraphs = cudaGraphs;
        Session = session;
        Spec = spec;
        KvType = kvType;
        Device = device;
        DeviceNote = deviceNote;
    }

    /// <inheritdoc />
    public ModelSpec Spec { get; }

    /// <inheritdoc />
    public ComputeDevice Device { get; }

    /// <inheritdoc />
    public string? DeviceNote { get; }

    /// <inheritdoc />
    /// <remarks>Paged graphs are built by the model builder in their final form and are not rewritten.</remarks>
    public string? GraphNote => null;

    /// <summary>
    /// The device's free memory now (the weights are loaded by then), for a fractional <c>--kv-cache-memory</c>, less what
    /// captured decode steps will need (<see cref="CapturedDecode.ReserveBytes"/>) when they are on.
    /// </summary>
    public long? DeviceFreeMemory => Math.Max(0, CudaRuntime.MemoryInfo(DeviceId).Free - CaptureReserveBytes);

    /// <summary>Device bytes held back from the KV budget for CUDA graph captures: 0 without them.</summary>
    internal long CaptureReserveBytes => CudaGraphs ? CapturedDecode.ReserveBytes(Spec, ChooseBlockSize(1), CudaGraphMaxBatch) : 0;

    /// <summary>Most decode rows captured as one CUDA graph (<c>--cuda-graph-max-batch</c>, capped by <c>--max-num-seqs</c>); default 256.</summary>
    internal int CudaGraphMaxBatch { get; set; } = CapturedDecode.DefaultMaxBatch;

    /// <summary>
    /// Batch-invariant greedy decoding (<c>--deterministic</c>): decode rows at one fixed captured shape, prompt rows one
    /// at a time in fixed chunks (<see cref="PagedDeviceRunner"/>). Default false.
    /// </summary>
    internal bool Deterministic { get; set; }

    /// <inheritdoc />
    public long? DeviceTotalMemory => OnnxSessionFactory.TotalMemory(Device);

    /// <summary>The session (the runner binds it).</summary>
    internal InferenceSession Session { get; }

    /// <summary>Element type of the KV pools (float16 or bfloat16).</summary>
    internal TensorElementType KvType { get; }

    /// <summary>The CUDA device ordinal.</summary>
    internal int DeviceId => Device.Ordinal;

    /// <summary>Whether the session was made with CUDA graph capture enabled (decode steps are then captured and replayed).</summary>
    internal bool CudaGraphs { get; }

    /// <summary>Whether the graph takes <c>attention_metadata</c> (int32 [2]: the step's most new tokens in a row, its longest row).</summary>
    internal bool HasAttentionMetadata => Session.InputMetadata.ContainsKey(AttentionMetadata);

    /// <summary>
    /// Whether the graph's MLA layers are PagedAttention in its LATENT layout (<c>build --mla-attention latent</c>, ADR
    /// 0008): one pool a layer and no <c>value_cache.{i}</c> inputs; nothing is padded, so no step is cut.
    /// </summary>
    internal bool LatentAttention => IsLatent(Session.InputMetadata);

    /// <summary>Whether a paged graph with <paramref name="inputs"/> is a LATENT one: pools, but no <c>value_cache.0</c>.</summary>
    private static bool IsLatent(IReadOnlyDictionary<string, NodeMetadata> inputs) => inputs.ContainsKey("key_cache.0") && !inputs.ContainsKey("value_cache.0");

    /// <summary>Whether <paramref name="session"/>'s graph is a paged one (it takes a <c>block_table</c>).</summary>
    internal static bool IsPaged(InferenceSession session) => session.InputMetadata.ContainsKey(BlockTable);

    /// <summary>
    /// FlashAttention's paged kernel reads one page per tile, so blocks must be a multiple of its tile: 256 tokens for
    /// head widths up to 64, 128 up to 128, else 64. The requested size is rounded up to that multiple.
    /// </summary>
    public int ChooseBlockSize(int requested)
    {
        var width = 0;
        foreach (var layer in Spec.KvLayers)
        {
            width = Math.Max(width, layer.KeyWidth);
        }

        return RoundBlockSize(requested, width);
    }

    /// <summary>Rounds <paramref name="requested"/> up to the multiple of FlashAttention's paged tile for head width <paramref name="width"/>.</summary>
    internal static int RoundBlockSize(int requested, int width)
    {
        var multiple = width <= 64 ? 256 : width <= 128 ? 128 : 64;
        return (Math.Max(requested, 1) + multiple - 1) / multiple * multiple;
    }

    /// <inheritdoc />
    public IModelRunner CreateRunner(int blockCount, int blockSize) => new PagedDeviceRunner(this, blockCount, blockSize);

    private int _graphIdRanges;

    /// <summary>
    /// The first of a range of <see cref="CaptureGraphIds.RangeSize"/> CUDA graph ids for one runner's captured steps
    /// (ranges never repeat): the session is this model's and outlives its runners.
    /// </summary>
    internal int ClaimGraphIds() => CaptureGraphIds.Claim(ref _graphIdRanges);

    /// <summary>Wraps an open session of a paged graph; disposes it when the graph or the device does not fit.</summary>
    /// <exception cref="ModelPackageException">The graph is not a valid paged graph, or the device is not CUDA.</exception>
    internal static PagedDecoderModel FromSession(InferenceSession session, ModelPackage package, ComputeDevice device, string? deviceNote, bool cudaGraphs = false)
    {
        try
        {
            var file = package.GraphPath;
            if (!device.IsCuda)
            {
                throw new ModelPackageException(file, $"this paged graph needs the CUDA execution provider (com.microsoft.PagedAttention has no CPU kernel), but the model runs on {device}{(deviceNote is null ? string.Empty : ": " + deviceNote)}");
            }

            var (spec, kvType) = Inspect(session, package);
            // Capture needs the host-side bounds: without them PagedAttention may read lengths back from the device.
            var capture = cudaGraphs && session.InputMetadata.ContainsKey(AttentionMetadata);
            return new PagedDecoderModel(session, spec, kvType, device, deviceNote, capture);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public void Dispose() => Session.Dispose();

    private static (ModelSpec Spec, TensorElementType KvType) Inspect(InferenceSession session, ModelPackage package)
    {
        var file = package.GraphPath;
        var inputs = session.InputMetadata;
        var outputs = session.OutputMetadata;
        Require(inputs, InputIds, TensorElementType.Int64, file);
        Require(inputs, CumulativeSequenceLength, TensorElementType.Int32, file);
        Require(inputs, PastSequenceLengths, TensorElementType.Int32, file);
        Require(inputs, BlockTable, TensorElementType.Int32, file);
        Require(inputs, LogitsIndices, TensorElementType.Int64, file);
        Require(outputs, NextTokens, TensorElementType.Int64, file);
        var logits = Require(outputs, Logits, TensorElementType.Float, file);
        if (inputs.ContainsKey(AttentionMetadata))
        {
            Require(inputs, AttentionMetadata, TensorElementType.Int32, file);
        }

        var layers = new List<LayerKvSpec>();
        var kvType = TensorElementType.Float16;
        // PagedAttention's LATENT layout (absorbed MLA, ADR 0008): one pool a layer, the value its key's prefix, no value pool.
        var latent = IsLatent(inputs);
        for (var i = 0; inputs.ContainsKey($"key_cache.{i}"); i++)
        {
            var (keyHeads, keyWidth, keyType) = ReadPool(inputs, $"key_cache.{i}", file);
            if (latent && (inputs.ContainsKey($"value_cache.{i}") || outputs.ContainsKey($"value_cache_out.{i}")))
            {
                throw new ModelPackageException(file, $"graph has no value_cache.0 (a latent graph) but layer {i} has a value pool");
            }

            var (valueHeads, valueWidth, valueType) = latent ? (0, 0, keyType) : ReadPool(inputs, $"value_cache.{i}", file);
            if (!outputs.ContainsKey($"key_cache_out.{i}") || (!latent && !outputs.ContainsKey($"value_cache_out.{i}")))
            {
                throw new ModelPackageException(file, $"graph has key_cache.{i} but no key_cache_out.{i} / value_cache_out.{i} outputs");
            }

            if (keyType != valueType || (i > 0 && keyType != kvType))
            {
                throw new ModelPackageException(file, $"the KV pools of layer {i} are {keyType} and {valueType}; every pool must have one element type");
            }

            kvType = keyType;
            layers.Add(new LayerKvSpec(i, keyHeads, keyWidth, valueHeads, valueWidth));
        }

        if (layers.Count == 0)
        {
            throw new ModelPackageException(file, "paged graph has no 'key_cache.{i}' inputs");
        }

        var vocab = logits.Dimensions.Length == 2 && logits.Dimensions[1] > 0 ? logits.Dimensions[1] : package.Config.VocabularySize;
        var spec = new ModelSpec
        {
            VocabularySize = vocab,
            ContextLength = package.Config.MaxPositionEmbeddings,
            KvLayers = layers,
            AttentionLayers = AttentionLayout.FromConfig(package.Config),
            ElementType = KvElementTypeExtensions.FromTensor(kvType),
        };
        return (spec, kvType);
    }

    private static NodeMetadata Require(IReadOnlyDictionary<string, NodeMetadata> values, string name, TensorElementType type, string file)
    {
        if (!values.TryGetValue(name, out var metadata))
        {
            throw new ModelPackageException(file, $"paged graph has no '{name}'");
        }

        if (metadata.ElementDataType != type)
        {
            throw new ModelPackageException(file, $"paged graph's '{name}' is {metadata.ElementDataType}, expected {type}");
        }

        return metadata;
    }

    private static (int Heads, int Width, TensorElementType Type) ReadPool(IReadOnlyDictionary<string, NodeMetadata> inputs, string name, string file)
    {
        if (!inputs.TryGetValue(name, out var metadata))
        {
            throw new ModelPackageException(file, $"paged graph has no '{name}' input");
        }

        var type = metadata.ElementDataType;
        if (type is not (TensorElementType.Float16 or TensorElementType.BFloat16))
        {
            throw new ModelPackageException(file, $"paged graph's '{name}' is {type}; PagedAttention pools are float16 or bfloat16");
        }

        var dims = metadata.Dimensions;
        if (dims.Length != 4 || dims[2] <= 0 || dims[3] <= 0)
        {
            throw new ModelPackageException(file, $"paged graph's '{name}' has shape [{string.Join(", ", dims)}]; expected [num_blocks, block_size, kv_heads, head_dim] with fixed heads and width");
        }

        return (dims[2], dims[3], type);
    }
}
