// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Text.Json;
using InferenceServer.Onnx.Attention;
using InferenceServer.Onnx.Packaging;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// A model served split at its attention operators (ADR 0005, attention offloading): the builder's L + 1 segment graphs
/// (<c>segment.{s}.onnx</c>, one ONNX Runtime session each: fp32 on the CPU, run by <see cref="SplitRunner"/>, or
/// fp16/bf16 on a CUDA device, run by <see cref="CudaSplitRunner"/>) and L attention calls on the memory devices named by
/// <see cref="OnnxSessionOptions.AttentionDevices"/> (<c>cpu</c>, or the compute GPU itself as <c>cuda:N</c>, the local
/// split), whose backends own the KV cache. The attention calls are the layers of <see cref="ModelSpec.AttentionLayers"/>
/// that have attention; the segment files are read from <c>genai_config.json</c>'s <c>inference_server.split</c>, whose
/// recorded calls must agree.
/// </summary>
public sealed partial class SplitDecoderModel : IDecoderModel
{
    private readonly InferenceSession[] _segments;

    private SplitDecoderModel(InferenceSession[] segments, ModelSpec spec, IReadOnlyList<AttentionLayerSpec> attention, IReadOnlyList<ComputeDevice> attentionDevices, int rotaryHalfWidth, int hiddenSize, OnnxSessionOptions options)
    {
        _segments = segments;
        HasNextTokens = segments[^1].OutputMetadata.ContainsKey(PagedDecoderModel.NextTokens);
        RoutedQueries = attention.Any(static a => a.HeadMasked)
            && attention.Select((a, s) => !a.HeadMasked || segments[s].OutputMetadata.ContainsKey(RoutedQueryOutput)).All(static ok => ok);
        Spec = spec;
        Attention = attention;
        AttentionDevices = attentionDevices;
        var names = new string[attentionDevices.Count];
        for (var i = 0; i < names.Length; i++)
        {
            names[i] = attentionDevices[i].ToString();
        }

        AttentionDeviceNames = names;
        RotaryHalfWidth = rotaryHalfWidth;
        HiddenSize = hiddenSize;
        Threads = options.IntraOpThreads;
        Overlap = options.AttentionOverlap;
    }

    /// <inheritdoc />
    public ModelSpec Spec { get; }

    /// <summary>Where the dense segments run: <c>cpu</c> or <c>cuda:N</c>.</summary>
    public ComputeDevice Device { get; private init; } = ComputeDevice.Cpu;

    /// <summary>The CUDA device of the dense segments, or -1 on the CPU.</summary>
    internal int DeviceId => Device.IsCuda ? Device.Ordinal : -1;

    /// <summary>Element type of the segments' activations, q, k, v and attention (float, float16 or bfloat16).</summary>
    internal TensorElementType SegmentType { get; private init; } = TensorElementType.Float;

    /// <summary>
    /// Whether attention runs on one GPU alone (<c>--attention-device cuda:N</c>): the local split when N is the compute GPU
    /// (q, k, v and the outputs stay on the device, <c>inference_attention_offload_bytes_total</c> stays 0), else peer
    /// copies to N and back.
    /// </summary>
    public bool CudaAttention => AttentionDevices.Count == 1 && AttentionDevices[0].IsCuda;

    /// <summary>
    /// Whether the compute GPU is one attention device among others (<c>--attention-device cuda:N --attention-device cpu</c>):
    /// its pool attends with the log-sum-exp graph (<see cref="Attention.LseAttentionBackend"/>) and merges with the host's.
    /// </summary>
    public bool MixedAttention => AttentionDevices.Count > 1 && AttentionDevices.Any(static d => d.IsCuda);

    /// <summary>
    /// Whether the GPU attends with PagedAttention (the local split of a model without latent MLA layers, whose block size
    /// is rounded to the kernel's tile); otherwise a GPU pool attends with <see cref="Attention.LseAttentionBackend"/>.
    /// </summary>
    internal bool PagedAttentionOnGpu => CudaAttention && !Attention.Any(static a => a.ValueIsKeyPrefix);

    /// <inheritdoc />
    public string? DeviceNote => null;

    /// <inheritdoc />
    /// <remarks>Segment graphs are built in their final form and are not rewritten.</remarks>
    public string? GraphNote => null;

    /// <summary>
    /// With a <c>cuda:N</c> attention device, its free memory now (the KV pools go there); else null: the KV cache lives
    /// in host memory (the engine sizes a fractional budget from the process's available memory).
    /// </summary>
    /// <remarks>With captured steps (<see cref="CapturesSteps"/>) less what their graphs and fixed buffers need, as for the fused runner.</remarks>
    public long? DeviceFreeMemory => CudaAttention ? FreeMemoryFor(AttentionDevices[0]) : null;

    /// <summary>
    /// Whether the local split's greedy decode steps run as CUDA graphs (ADR 0011): <c>--cuda-graphs</c> (on by default),
    /// one stream for the step, and PagedAttention on the compute GPU. The runner captures a whole step (every segment and
    /// attention run) as one graph on that stream.
    /// </summary>
    public bool CapturesSteps { get; private init; }

    /// <summary>Most decode rows a captured step holds (<c>--cuda-graph-max-batch</c>); larger steps run uncaptured.</summary>
    public int CudaGraphMaxBatch { get; private init; } = CapturedDecode.DefaultMaxBatch;

    /// <inheritdoc />
    public long? DeviceTotalMemory => CudaAttention ? OnnxSessionFactory.TotalMemory(AttentionDevices[0]) : null;

    /// <summary>The memory devices, in the order their block ranges follow each other.</summary>
    public IReadOnlyList<ComputeDevice> AttentionDevices { get; }

    /// <summary>The memory devices' names (<c>cpu</c>, <c>cuda:N</c>), made once: the metrics' device label.</summary>
    internal IReadOnlyList<string> AttentionDeviceNames { get; }

    /// <summary>The attention devices: they hold the KV cache.</summary>
    public IReadOnlyList<ComputeDevice> KvDevices => AttentionDevices;

    /// <summary>The decoder layer of each attention call, in order (for the startup log).</summary>
    public IReadOnlyList<int> AttentionLayers
    {
        get
        {
            var layers = new int[Attention.Count];
            for (var i = 0; i < layers.Length; i++)
            {
                layers[i] = Attention[i].Layer;
            }

            return layers;
        }
    }

    /// <summary>Segment graphs (one more than the attention calls).</summary>
    public int SegmentCount => _segments.Length;

    /// <summary>The attention calls, in order.</summary>
    internal IReadOnlyList<AttentionLayerSpec> Attention { get; }

    /// <summary>The segment sessions, in order.</summary>
    internal IReadOnlyList<InferenceSession> Segments => _segments;

    /// <summary>
    /// Whether the last segment gives each logit row's argmax (<c>next_tokens</c>; builds before it give logits only), so
    /// a runner on a GPU can leave the logits there when no row needs its distribution.
    /// </summary>
    internal bool HasNextTokens { get; }

    /// <summary>An MoH segment's queries of the heads its tokens use (with <see cref="HeadIndexOutput"/>; builds from 2026-12-07).</summary>
    internal const string RoutedQueryOutput = "q_routed";

    /// <summary>Which heads <see cref="RoutedQueryOutput"/> holds, [T, active] int64.</summary>
    internal const string HeadIndexOutput = "head_index";

    /// <summary>
    /// Whether every MoH attention call's segment also gives the routed heads' queries alone (<c>q_routed</c>,
    /// <c>head_index</c>), so a runner sends memory devices only those (false without MoH layers).
    /// </summary>
    internal bool RoutedQueries { get; }

    /// <summary>Width of the RoPE rows segment 0 hands on.</summary>
    internal int RotaryHalfWidth { get; }

    /// <summary>Width of the residual stream.</summary>
    internal int HiddenSize { get; }

    /// <summary>Threads of the CPU attention kernel (0: every core).</summary>
    internal int Threads { get; }

    /// <summary>
    /// The CUDA stream the segments run on with <c>--split-one-stream</c> (ADR 0010), which attention on the same GPU
    /// shares; zero otherwise (each session's own stream, synchronized after every run).
    /// </summary>
    internal IntPtr Stream { get; private init; }

    /// <summary>Whether the step runs on one CUDA stream (<c>--split-one-stream</c> took effect).</summary>
    public bool OneStream => Stream != IntPtr.Zero;

    /// <summary>
    /// Whether rows that start at position 0 attend over themselves on the compute device (<c>--prefill-attention
    /// compute</c>, or <c>auto</c> on a CUDA compute device where it applies; <see cref="PromptAttention"/>), the host
    /// backends only appending their KV.
    /// </summary>
    public bool PrefillOnCompute => PrefillMinTokens > 0;

    /// <summary>The fewest new tokens of such a row (<see cref="OnnxSessionOptions.PrefillAttentionMinTokens"/>); 0 when off.</summary>
    internal int PrefillMinTokens { get; private init; }

    /// <summary>Whether steps run as two micro-batches so that host attention overlaps the dense segments (<c>--attention-overlap</c>, ADR 0010).</summary>
    public AttentionOverlap Overlap { get; }

    /// <summary>Blocks of pool <paramref name="pool"/> when <paramref name="blockCount"/> are split evenly among <paramref name="pools"/> (the first takes the remainder).</summary>
    public static int PoolBlocks(int blockCount, int pools, int pool) => (blockCount / pools) + (pool == 0 ? blockCount % pools : 0);

    /// <summary>The blocks of each attention device's pool of <paramref name="runner"/> (one of this model's), in <c>--attention-device</c> order.</summary>
    public static IReadOnlyList<int> PoolBlockCounts(IModelRunner runner) => runner switch
    {
        SplitRunner split => split.PoolBlockCounts,
        CudaSplitRunner split => split.PoolBlockCounts,
        _ => [runner.BlockCount],
    };

    /// <summary>
    /// What each attention device's store has free now, in <c>--attention-device</c> order (a per-device
    /// <c>--kv-cache-memory</c> list sizes fractions from it): a <c>cuda:N</c> device's free memory (less what captured
    /// steps hold back, as <see cref="DeviceFreeMemory"/>), null for a <c>cpu</c> pool (host memory).
    /// </summary>
    public IReadOnlyList<long?> PoolFreeMemory()
    {
        var free = new long?[AttentionDevices.Count];
        for (var i = 0; i < free.Length; i++)
        {
            free[i] = AttentionDevices[i].IsCuda ? FreeMemoryFor(AttentionDevices[i]) : null;
        }

        return free;
    }

    /// <summary>A CUDA attention device's free memory now, less what captured steps hold back (<see cref="CapturesSteps"/>).</summary>
    private long FreeMemoryFor(ComputeDevice device) =>
        Math.Max(0, OnnxSessionFactory.FreeMemory(device)!.Value - (CapturesSteps ? CapturedDecode.ReserveBytes(Spec, ChooseBlockSize(1), CudaGraphMaxBatch) : 0));

    /// <summary>The CPU backends take any block size; the CUDA backend's PagedAttention wants its tile's multiple (<see cref="PagedDecoderModel.RoundBlockSize"/>).</summary>
    public int ChooseBlockSize(int requested)
    {
        if (!PagedAttentionOnGpu)
        {
            return requested;
        }

        var width = 0;
        foreach (var call in Attention)
        {
            width = Math.Max(width, call.KeyWidth);
        }

        return PagedDecoderModel.RoundBlockSize(requested, width);
    }

    /// <summary>
    /// Creates the runner: the <paramref name="blockCount"/> global blocks are split evenly among the attention devices in
    /// order (the first takes the remainder): the first holds [0, n1), the next [n1, n1 + n2), ...
    /// </summary>
    public IModelRunner CreateRunner(int blockCount, int blockSize)
    {
        var pools = new int[AttentionDevices.Count];
        for (var i = 0; i < pools.Length; i++)
        {
            pools[i] = PoolBlocks(blockCount, pools.Length, i);
        }

        return CreateRunner(pools, blockSize);
    }

    /// <summary>
    /// Creates the runner with <paramref name="poolBlocks"/>[i] blocks on attention device i (a per-device
    /// <c>--kv-cache-memory</c> list): the first holds [0, n1), the next [n1, n1 + n2), ...
    /// </summary>
    /// <exception cref="ArgumentException">Not one positive count per attention device (the runners check, <c>SplitRunner.CheckPools</c>).</exception>
    public IModelRunner CreateRunner(IReadOnlyList<int> poolBlocks, int blockSize) =>
        DeviceId >= 0 ? new CudaSplitRunner(this, poolBlocks, blockSize) : new SplitRunner(this, poolBlocks, blockSize);

    /// <summary>Whether <paramref name="device"/> names an attention device: <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c> (whether it exists is checked at <see cref="Open"/>).</summary>
    /// <exception cref="ExecutionProviderException">The name is malformed or unknown.</exception>
    public static void ValidateAttentionDevice(string device) => ParseAttentionDevice(device);

    /// <summary>Reads one <c>--attention-device</c> entry (lower case, as the host passes it): <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</summary>
    /// <exception cref="ExecutionProviderException">The name is malformed or unknown.</exception>
    internal static ComputeDevice ParseAttentionDevice(string device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device == "cpu")
        {
            return ComputeDevice.Cpu;
        }

        if (device != "cuda" && !device.StartsWith("cuda:", StringComparison.Ordinal))
        {
            throw new ExecutionProviderException($"--attention-device {device}: unknown; use cpu or cuda:N");
        }

        try
        {
            return DeviceRequest.Parse(device).Device;
        }
        catch (ExecutionProviderException ex)
        {
            throw new ExecutionProviderException($"--attention-device {device}: malformed; use cpu or cuda:N (N a device number)", ex);
        }
    }

    /// <summary>Opens <paramref name="package"/>'s split form with attention on <paramref name="options"/>' attention devices.</summary>
    /// <exception cref="ModelPackageException">The folder has no split form, or a segment cannot be loaded.</exception>
    /// <exception cref="ExecutionProviderException">An attention device or the compute device is not supported.</exception>
    public static SplitDecoderModel Open(ModelPackage package, OnnxSessionOptions options)
    {
        ArgumentNullException.ThrowIfNull(package);
        ArgumentNullException.ThrowIfNull(options);
        var attentionDevices = new ComputeDevice[options.AttentionDevices.Count];
        for (var i = 0; i < attentionDevices.Length; i++)
        {
            attentionDevices[i] = ParseAttentionDevice(options.AttentionDevices[i]);
        }

        var hostPoolsOnly = attentionDevices.All(static d => !d.IsCuda);
        if (options.HostKvElementType is not null && !hostPoolsOnly)
        {
            throw new ExecutionProviderException("--kv-cache-dtype sets the host pools' type: every --attention-device must be cpu (a GPU pool stores the segments' own type)");
        }

        if (options.PrefillAttentionOnCompute == true && !hostPoolsOnly)
        {
            throw new ExecutionProviderException("--prefill-attention compute moves prompt attention off the host: every --attention-device must be cpu (a GPU attention device attends prompts on the GPU already)");
        }

        var factory = new OnnxSessionFactory(options);
        var layers = AttentionLayout.FromConfig(package.Config);
        var attention = new List<AttentionLayerSpec>(layers.Count);
        foreach (var layer in layers)
        {
            if (layer.HasAttention)
            {
                attention.Add(layer);
            }
        }

        if (options.PrefillAttentionOnCompute == true && !PromptAttention.Serves(attention))
        {
            throw new ExecutionProviderException("--prefill-attention compute runs prompt attention as GroupQueryAttention: this model has a layer it does not express (MLA's latent attention, or no attention layer); use --prefill-attention auto or host");
        }

        var genAi = Path.Combine(package.Directory, "genai_config.json");
        var (segmentFiles, rotaryHalf, hidden, dtype) = ReadSplit(genAi, package, attention);
        var computeDevice = ChooseComputeDevice(options, factory.Request, attentionDevices, dtype, package);
        var segmentDevice = computeDevice < 0 ? ComputeDevice.Cpu : ComputeDevice.Cuda(computeDevice);
        var sessions = new InferenceSession[segmentFiles.Count];
        // One stream for the step (--split-one-stream; auto: the local split with PagedAttention, the form measured and
        // tested on one stream; not an MLA model's log-sum-exp graph): not with attention on another GPU, whose peer copies
        // synchronize per call.
        var oneStream = options.SplitOneStream ?? (attentionDevices.All(d => d == segmentDevice) && attention.All(a => a.Kind != AttentionKind.Mla));
        var stream = oneStream && segmentDevice.IsCuda && attentionDevices.All(d => !d.IsCuda || d == segmentDevice)
            ? CudaRuntime.CreateStream(segmentDevice.Ordinal)
            : IntPtr.Zero;
        // Captured decode steps (ADR 0011): the local split with PagedAttention on one stream, unless --cuda-graphs false.
        var capture = options.CudaGraphs && stream != IntPtr.Zero && attentionDevices.Length == 1 && attentionDevices[0] == segmentDevice
            && attention.All(static a => !a.ValueIsKeyPrefix);
        try
        {
            for (var s = 0; s < sessions.Length; s++)
            {
                sessions[s] = factory.Open(Path.Combine(package.Directory, segmentFiles[s]), segmentDevice, stream);
            }
        }
        catch
        {
            foreach (var session in sessions)
            {
                session?.Dispose();
            }

            CudaRuntime.DestroyStream(stream);
            throw;
        }

        var kvLayers = new List<LayerKvSpec>(attention.Count);
        for (var i = 0; i < attention.Count; i++)
        {
            // An MLA value is the key's prefix: nothing more is stored for it.
            var call = attention[i];
            kvLayers.Add(new LayerKvSpec(i, call.KvHeads, call.KeyWidth, call.KvHeads, call.ValueIsKeyPrefix ? 0 : call.ValueWidth));
        }

        var spec = new ModelSpec
        {
            VocabularySize = package.Config.VocabularySize,
            ContextLength = package.Config.MaxPositionEmbeddings,
            KvLayers = kvLayers,
            AttentionLayers = layers,
            // The host pools may store another type than the segments (--kv-cache-dtype); a GPU pool stores the segments'.
            ElementType = options.HostKvElementType
                ?? dtype switch { "fp16" => KvElementType.Float16, "bf16" => KvElementType.BFloat16, _ => KvElementType.Float32 },
        };
        return new SplitDecoderModel(sessions, spec, attention, attentionDevices, rotaryHalf, hidden, options)
        {
            Device = segmentDevice,
            Stream = stream,
            // A captured step reads each row's argmax from next_tokens (builds before it give logits only).
            CapturesSteps = capture && sessions[^1].OutputMetadata.ContainsKey(PagedDecoderModel.NextTokens),
            CudaGraphMaxBatch = options.CudaGraphMaxBatch,
            // --prefill-attention: auto takes prompts to a CUDA compute device wherever the host pools are the only ones and
            // the layers are GroupQueryAttention's shape (measured on the H100: 2,048-token prompts' TTFT 4-5x lower).
            PrefillMinTokens = (options.PrefillAttentionOnCompute ?? (segmentDevice.IsCuda && hostPoolsOnly && PromptAttention.Serves(attention)))
                ? Math.Max(1, options.PrefillAttentionMinTokens)
                : 0,
            SegmentType = dtype switch { "fp16" => TensorElementType.Float16, "bf16" => TensorElementType.BFloat16, _ => TensorElementType.Float },
        };
    }

    /// <summary>The <c>kind</c> genai_config.json records for an attention call.</summary>
    private static string KindName(AttentionKind kind) => kind switch
    {
        AttentionKind.Moh => "moh",
        AttentionKind.Mla => "mla",
        _ => "gqa",
    };

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var session in _segments)
        {
            session.Dispose();
        }

        CudaRuntime.DestroyStream(Stream);
    }

    private static (IReadOnlyList<string> Segments, int RotaryHalf, int Hidden, string DType) ReadSplit(string path, ModelPackage package, IReadOnlyList<AttentionLayerSpec> attention)
    {
        const string What = "this model has no split form for attention offloading (genai_config.json has no inference_server.split): "
            + "serve the Hugging Face checkpoint folder instead (the server builds its split form), or build one with "
            + "'InferenceServer build --checkpoint <dir> --out <dir> --split'; or serve it without --attention-device";
        if (!File.Exists(path))
        {
            throw new ModelPackageException(package.GraphPath, What);
        }

        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(path));
            var root = document.RootElement;
            if (!root.TryGetProperty("inference_server", out var section) || !section.TryGetProperty("split", out var split))
            {
                throw new ModelPackageException(package.GraphPath, What);
            }

            var segments = new List<string>();
            foreach (var segment in split.GetProperty("segments").EnumerateArray())
            {
                var name = segment.GetString() ?? string.Empty;
                if (name.Length == 0 || Path.GetFileName(name) != name || !File.Exists(Path.Combine(package.Directory, name)))
                {
                    throw new ModelPackageException(path, $"split segment '{name}' is missing from the model folder; rebuild it");
                }

                segments.Add(name);
            }

            // The calls come from config.json (ModelSpec.AttentionLayers); what the build recorded must agree with them.
            var recorded = 0;
            foreach (var call in split.GetProperty("attention").EnumerateArray())
            {
                var kind = call.GetProperty("kind").GetString();
                var expected = recorded < attention.Count ? attention[recorded] : null;
                if (expected is null || call.GetProperty("layer").GetInt32() != expected.Layer || call.GetProperty("query_heads").GetInt32() != expected.QueryHeads
                    || call.GetProperty("kv_heads").GetInt32() != expected.KvHeads || call.GetProperty("key_width").GetInt32() != expected.KeyWidth
                    || call.GetProperty("value_width").GetInt32() != expected.ValueWidth || kind != KindName(expected.Kind)
                    || Math.Abs(call.GetProperty("scale").GetDouble() - expected.Scale) > 1e-6 * expected.Scale)
                {
                    throw new ModelPackageException(path, string.Create(CultureInfo.InvariantCulture, $"split attention call {recorded} does not match config.json's attention layers; rebuild the model"));
                }

                recorded++;
            }

            if (recorded != attention.Count)
            {
                throw new ModelPackageException(path, string.Create(CultureInfo.InvariantCulture, $"split records {recorded} attention calls, config.json has {attention.Count} attention layers; rebuild the model"));
            }

            if (attention.Count == 0 || segments.Count != attention.Count + 1)
            {
                throw new ModelPackageException(path, $"split has {segments.Count} segments for {attention.Count} attention calls; expected one more segment than calls");
            }

            var hidden = root.GetProperty("model").GetProperty("decoder").GetProperty("hidden_size").GetInt32();
            var dtype = split.TryGetProperty("dtype", out var type) ? type.GetString() ?? "fp32" : "fp32";
            if (dtype is not ("fp32" or "fp16" or "bf16"))
            {
                throw new ModelPackageException(path, $"split segments in dtype '{dtype}' are not served; rebuild with --dtype fp32, fp16 or bf16");
            }

            return (segments, split.GetProperty("rotary_half_width").GetInt32(), hidden, dtype);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new ModelPackageException(path, $"has a malformed inference_server.split section ({ex.Message}); rebuild the model", ex);
        }
    }
}
