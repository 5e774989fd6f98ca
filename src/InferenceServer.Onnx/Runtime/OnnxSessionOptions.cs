// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>How ONNX Runtime sessions are created.</summary>
public sealed class OnnxSessionOptions
{
    /// <summary>Threads for one operator; 0 (the default) lets ONNX Runtime use every core.</summary>
    public int IntraOpThreads { get; set; }

    /// <summary>
    /// When ONNX Runtime's intra-op threads spin instead of sleeping. Default <see cref="OnnxSpinning.Never"/>: a serving
    /// process has other threads (HTTP, streaming) that need the cores while a step runs, and a spinning thread that the
    /// kernel takes off its core mid-operator stalls the whole step. <see cref="OnnxSpinning.Step"/> is faster when those
    /// threads have little to do (one stream at a time); measurements in <c>docs/OPERATIONS.md</c>.
    /// </summary>
    public OnnxSpinning Spinning { get; set; } = OnnxSpinning.Never;

    /// <summary>
    /// Where the model runs: <c>auto</c> (the default: the CUDA execution provider on GPU 0 when it loads, else the CPU),
    /// <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.
    /// </summary>
    public string Device { get; set; } = "auto";

    /// <summary>
    /// Capture and replay decode steps of paged CUDA graphs as CUDA graphs (ONNX Runtime's <c>enable_cuda_graph</c>, one
    /// graph per padded batch size and block-table width): the host launches one graph instead of every kernel. On by
    /// default, as in vLLM (whose <c>--enforce-eager</c> is this set to false); ignored for other graphs and devices.
    /// </summary>
    public bool CudaGraphs { get; set; } = true;

    /// <summary>
    /// Most decode rows captured as one CUDA graph (<c>--cuda-graph-max-batch</c>; the host caps it at
    /// <c>--max-num-seqs</c>): steps are padded to 1, 2, 4, 8, 16, 24, ... rows, each bucket captured the first time it
    /// is seen. Default 256.
    /// </summary>
    public int CudaGraphMaxBatch { get; set; } = 256;

    /// <summary>
    /// Batch-invariant greedy decoding (<c>--deterministic</c>, paged CUDA graphs): every decode step runs at one fixed
    /// captured shape (the largest bucket, the whole context's block table), prompt rows run one at a time in chunks
    /// cut at fixed positions, so a row's tokens do not depend on what shares its steps. Costs throughput. Default false.
    /// </summary>
    public bool Deterministic { get; set; }

    /// <summary>With <see cref="Deterministic"/>, prompt rows run in chunks that end at multiples of this many positions (rounded up to whole KV blocks).</summary>
    public const int DeterministicChunkTokens = 512;

    /// <summary>
    /// Rewrite Hugging Face exports at load into graphs that compute the same values with fewer copies (ADR 0004: the
    /// grouped-query KV repeat and identity Concats go). On by default; <c>--onnx-graph-rewrite false</c> runs the graph as it is.
    /// </summary>
    public bool RewriteGraph { get; set; } = true;

    /// <summary>
    /// Memory devices that hold the KV cache and run attention (<c>--attention-device</c>, ADR 0005): empty (the default)
    /// runs the model fused, as it is; <c>cpu</c> entries (one per pool; the KV budget is split evenly between them)
    /// serve the model's split form with attention on the host's cores.
    /// </summary>
    public IReadOnlyList<string> AttentionDevices { get; set; } = [];

    /// <summary>
    /// The element type of the host KV pools of <c>cpu</c> attention devices (<c>--kv-cache-dtype</c>, ADR 0005): null
    /// (<c>auto</c>, the default) keeps the split model's own (float32 for CPU segments, the segments' fp16/bf16 on a
    /// GPU); float16 or bfloat16 halves a CPU split's KV memory and the bytes its attention reads. Only where every
    /// attention device is <c>cpu</c>.
    /// </summary>
    public KvElementType? HostKvElementType { get; set; }

    /// <summary>
    /// Whether a split model's step runs as two micro-batches, host attention for one overlapping the dense segments of
    /// the other (<c>--attention-overlap auto|on|off</c>, ADR 0010): <see cref="Runtime.AttentionOverlap.Auto"/> (the
    /// default) when host attention takes longer than the dense segments. Only host (<c>cpu</c>) attention devices overlap.
    /// </summary>
    public AttentionOverlap AttentionOverlap { get; set; } = AttentionOverlap.Auto;

    /// <summary>
    /// Whether, with <c>cpu</c> attention devices, a split step's rows that start at position 0 (fresh prompts and first
    /// chunks) attend over themselves on the compute device, the host only appending their KV (<c>--prefill-attention
    /// compute</c>, ADR 0005); false (<c>host</c>) leaves every row's attention to the host; null (<c>auto</c>, the
    /// default) is true on a CUDA compute device where it applies (every attention device <c>cpu</c>, every attention
    /// layer GQA or MoH) and false elsewhere. True only where it applies (else the model does not open).
    /// </summary>
    public bool? PrefillAttentionOnCompute { get; set; }

    /// <summary>
    /// With <see cref="PrefillAttentionOnCompute"/>, the fewest new tokens a row at position 0 needs to be attended on the
    /// compute device (default 128): one GroupQueryAttention call per row and layer costs a launch-bound ~0.1 ms, about
    /// what the host's cores need for the attention of a 100-130-token prompt of the 1B-8B shapes (4 x heads x head width
    /// x n^2 / 2 FLOP at ~0.6 TFLOP/s on 16 cores), so shorter prompts stay on the host. Tests set 1.
    /// </summary>
    public int PrefillAttentionMinTokens { get; set; } = DefaultPrefillAttentionMinTokens;

    /// <summary>The default of <see cref="PrefillAttentionMinTokens"/> (<c>--prefill-attention-min-tokens</c>).</summary>
    public const int DefaultPrefillAttentionMinTokens = 128;

    /// <summary>
    /// Whether a split model's CUDA segments (and attention on the same GPU) run on one CUDA stream of the server's, the
    /// step's thread queueing every segment and attention call without waiting for each and synchronizing once, before
    /// the logits are read (<c>--split-one-stream</c>, ADR 0010); false: a synchronization after every call. Null (the
    /// default, <c>auto</c>): on for the local split with PagedAttention (every attention device the compute GPU itself, no
    /// MLA layer), where it measured
    /// 0.76x -> 0.91x of the fused server at 256 rows on an H100, off otherwise.
    /// </summary>
    public bool? SplitOneStream { get; set; }

    /// <summary>Graph optimization level: <c>all</c> (the default), <c>extended</c>, <c>basic</c> or <c>none</c>.</summary>
    internal string GraphOptimization { get; set; } = "all";

    /// <summary>
    /// When set, ONNX Runtime writes a trace of every operator it runs to <c>&lt;prefix&gt;_&lt;time&gt;.json</c> when the
    /// session closes (for <c>bench/profile-step/ort-ops.cs</c> and the GPU bench's kernel counts; it slows every step
    /// down). Default: the <see cref="ProfileEnvironmentVariable"/> environment variable, else none.
    /// </summary>
    public string? ProfilePrefix { get; set; } = Environment.GetEnvironmentVariable(ProfileEnvironmentVariable) is { Length: > 0 } prefix ? prefix : null;

    /// <summary>The environment variable that switches ONNX Runtime's profiler on for every session: its value is <see cref="ProfilePrefix"/>.</summary>
    public const string ProfileEnvironmentVariable = "INFERENCE_SERVER_ORT_PROFILE";
}

/// <summary>When ONNX Runtime's intra-op threads spin (<c>--onnx-spinning</c>).</summary>
public enum OnnxSpinning
{
    /// <summary>Never spin: a thread with no work sleeps at once (the server's default).</summary>
    Never,

    /// <summary>Spin while a step runs and stop as soon as it returns (<c>session.force_spinning_stop</c>).</summary>
    Step,

    /// <summary>Spin between steps too: ONNX Runtime's own default, fastest on an otherwise idle machine.</summary>
    Always,
}
