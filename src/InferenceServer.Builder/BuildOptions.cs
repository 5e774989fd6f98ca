// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder;

/// <summary>What to build: a Hugging Face checkpoint folder into a servable ONNX model folder.</summary>
public sealed record BuildOptions
{
    /// <summary>The checkpoint folder: <c>config.json</c> and <c>*.safetensors</c> (sharded with an index, or not).</summary>
    public required string CheckpointDirectory { get; init; }

    /// <summary>
    /// The output folder; created if missing. The builder owns the files it writes there: they are replaced, and tokenizer
    /// or config files an earlier build copied that this checkpoint lacks are removed.
    /// </summary>
    public required string OutputDirectory { get; init; }

    /// <summary>
    /// Element type of weights, activations and KV cache: <c>fp32</c> (default; the dense graph of ADR 0002, CPU or
    /// CUDA), or <c>fp16</c> / <c>bf16</c> (the paged graph of ADR 0003, which needs <see cref="Device"/> <c>cuda</c>),
    /// or <c>int4</c> (ADR 0006: the layers' projections as 4-bit <c>MatMulNBits</c>, the rest fp32 in the dense graph
    /// for <c>cpu</c>, fp16 in the paged graph for <c>cuda</c>).
    /// </summary>
    public string DType { get; init; } = "fp32";

    /// <summary>Target execution provider: <c>cpu</c> (default) or <c>cuda</c>.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>
    /// Paged graph only: feed each PagedAttention node the step's bounds (<c>attention_metadata</c>, int32 [2]: the most
    /// new tokens in a row, the longest row), so that it picks its kernel from them instead of reading the lengths back
    /// from the device, a host synchronisation per layer per step. Default true; false leaves the input out, for an
    /// ONNX Runtime whose PagedAttention has no such input.
    /// </summary>
    public bool AttentionMetadata { get; init; } = true;

    /// <summary>
    /// Also emit the split form of ADR 0005 (attention offloading): <c>segment.{s}.onnx</c>, one more than the attention
    /// layers, beside the fused graph and sharing its data file, recorded in <c>genai_config.json</c>, in the <c>--dtype</c> (fp32, fp16 or bf16; not int4). Default false.
    /// </summary>
    public bool Split { get; init; }

    /// <summary><c>--dtype int4</c>: elements of K per quantization block, 32 (default) or 128.</summary>
    public int Int4BlockSize { get; init; } = 32;

    /// <summary><c>--dtype int4</c>: a 4-bit zero point per block (asymmetric) instead of the implicit 8 (symmetric, default false).</summary>
    public bool Int4ZeroPoints { get; init; }

    /// <summary>
    /// The graph's I/O contract: <c>auto</c> (default: what <see cref="DType"/> and <see cref="Device"/> imply), or
    /// <c>genai</c>: the onnxruntime-genai contract, <c>com.microsoft.GroupQueryAttention</c> fed <c>seqlens_k</c> and
    /// <c>total_sequence_length</c> (ADR 0006); fp32 or int4, cpu.
    /// </summary>
    public string Graph { get; init; } = "auto";

    /// <summary>
    /// Fewer kernels per layer (ADR 0007, <c>--fuse on|off</c>): residual add + RMSNorm as one
    /// <c>SkipSimplifiedLayerNormalization</c> (fp32/fp16), gate and up as one projection. Default true; false writes the
    /// graph as before, for before/after kernel counts.
    /// </summary>
    public bool FuseKernels { get; init; } = true;

    /// <summary>
    /// How the paged graph of an MLA checkpoint attends (<c>--mla-attention gather|latent</c>, ADR 0008): <c>gather</c>
    /// (the default) gathers each row's latents and rope keys from two pools and attends with standard ops; <c>latent</c>
    /// calls ONNX Runtime 1.31's <c>PagedAttention</c> in its LATENT layout, one pool of kv_lora_rank + rope a layer read
    /// in place, RoPE inside the op. Measured on an H100 (2026-12-08): the op's numbers match a CPU reference, but at 256
    /// decode rows one layer takes ~12x the GQA 1B layer's time, so <c>gather</c> stays the default; and the op rotates
    /// only where kv_lora_rank + rope and rope are multiples of 16, which the builder checks. <c>mha</c> (2026-12-08) gathers
    /// as <c>gather</c> does and attends with one <c>com.microsoft.MultiHeadAttention</c> a layer (one head, a row's heads
    /// as its query rows), fp16 only; checked on the CPU, not yet timed on a GPU.
    /// </summary>
    public string MlaAttention { get; init; } = "gather";

    /// <summary>
    /// Writes a <c>latent</c> graph even where ONNX Runtime's kernel would refuse its head size at run time: for the
    /// graph-structure tests, whose small fixtures (kv_lora_rank 32 + rope 8) are narrower than the kernel runs.
    /// </summary>
    internal bool AllowUnrunnableLatentShapes { get; init; }
}
