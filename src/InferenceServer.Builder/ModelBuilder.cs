// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using InferenceServer.Builder.Checkpoint;
using InferenceServer.Builder.Graph;
using InferenceServer.Builder.Safetensors;

namespace InferenceServer.Builder;

/// <summary>
/// Builds a Hugging Face decoder checkpoint into the server's model folder layout: <c>model.onnx</c> with its weights
/// in <c>model.onnx.data</c>, <c>genai_config.json</c> describing the graph's I/O, and the checkpoint's
/// <c>config.json</c>, generation config and tokenizer files copied beside them.
/// </summary>
public static class ModelBuilder
{
    /// <summary>The graph file name.</summary>
    internal const string GraphFileName = "model.onnx";

    /// <summary>The external-data file name.</summary>
    internal const string DataFileName = "model.onnx.data";

    /// <summary>The metadata file name.</summary>
    internal const string GenAiConfigFileName = "genai_config.json";

    /// <summary>The qualified op type of the per-layer attention nodes of the dense (fp32) graph.</summary>
    internal const string AttentionOp = "ai.onnx." + DecoderGraphBuilder.AttentionOpType;

    /// <summary>The qualified op type of the per-layer attention nodes of the paged (fp16/bf16, CUDA) graph.</summary>
    internal const string PagedAttentionOp = DecoderGraphBuilder.PagedAttentionDomain + "." + DecoderGraphBuilder.PagedAttentionOpType;

    /// <summary>The paged graph's MLA attention (ADR 0008): ScatterND into the latent / rope-key pools, Gather, MatMul, Softmax.</summary>
    internal const string PagedMlaAttentionOp = "ai.onnx.MatMul (absorbed MLA over gathered blocks)";

    /// <summary>The attention op of a paged MLA graph built with <c>--mla-attention mha</c>.</summary>
    internal const string PagedMlaMhaAttentionOp = "com.microsoft.MultiHeadAttention (absorbed MLA over gathered blocks)";

    /// <summary>The attention op of a paged MLA graph built with <c>--mla-attention latent</c>.</summary>
    internal const string PagedMlaLatentAttentionOp = "com.microsoft.PagedAttention (LATENT: absorbed MLA over the latent pool in place)";

    /// <summary>The qualified op type of the per-layer attention nodes of the GenAI-contract graph (<c>--graph genai</c>).</summary>
    internal const string GroupQueryAttentionOp = DecoderGraphBuilder.PagedAttentionDomain + "." + DecoderGraphBuilder.GroupQueryAttentionOpType;

    /// <summary>The GenAI-contract graph (ADR 0006): <c>GroupQueryAttention</c>, contiguous past/present rows, fp32 or int4, CPU.</summary>
    internal const string GenAiGraph = DecoderGraphBuilder.GenAiGraph;

    /// <summary>The <c>model.onnx</c> metadata key naming the graph flavor (<see cref="DenseGraph"/> or <see cref="PagedGraph"/>).</summary>
    internal const string GraphMetadataKey = "inferenceserver.graph";

    /// <summary>The <c>model.onnx</c> metadata key naming the element type (<c>fp32</c>, <c>fp16</c>, <c>bf16</c>).</summary>
    internal const string DTypeMetadataKey = "inferenceserver.dtype";

    /// <summary>The dense graph (ADR 0002): ONNX <c>Attention</c>, past/present KV tensors, fp32, CPU or CUDA.</summary>
    internal const string DenseGraph = "dense-v1";

    /// <summary>The paged graph (ADR 0003): <c>com.microsoft.PagedAttention</c> over device block pools, fp16/bf16, CUDA only.</summary>
    internal const string PagedGraph = DecoderGraphBuilder.PagedGraph;

    /// <summary>The <c>inferenceserver.graph</c> metadata of split segment graphs (ADR 0005).</summary>
    internal const string SplitGraph = "split-v1";


    /// <summary>The file name of split segment <c>s</c> (ADR 0005): <c>segment.{s}.onnx</c>.</summary>
    internal static string SegmentFileName(int segment) => "segment." + segment.ToString(CultureInfo.InvariantCulture) + ".onnx";

    /// <summary>The checkpoint files copied to the output as they are, when present.</summary>
    private static readonly string[] CopiedFiles =
    [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "chat_template.jinja", "chat_template.json", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
    ];

    /// <summary>Builds <paramref name="options"/>' checkpoint; reads one tensor at a time.</summary>
    /// <exception cref="ModelBuildException">The checkpoint is missing, malformed or not buildable with these options.</exception>
    public static BuildResult Build(BuildOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        Validate(options);

        var checkpoint = Path.GetFullPath(options.CheckpointDirectory);
        if (!Directory.Exists(checkpoint))
        {
            throw new ModelBuildException($"{checkpoint}: checkpoint folder does not exist");
        }

        var configPath = Path.Combine(checkpoint, "config.json");
        if (!File.Exists(configPath))
        {
            throw new ModelBuildException($"{configPath}: missing; a checkpoint needs config.json");
        }

        var config = DecoderConfig.Parse(File.ReadAllText(configPath), configPath);
        var output = Path.GetFullPath(options.OutputDirectory);
        if (string.Equals(output, checkpoint, StringComparison.Ordinal))
        {
            throw new ModelBuildException($"{output}: the output folder must differ from the checkpoint folder");
        }

        Directory.CreateDirectory(output);

        // Everything is written to a staging folder inside the output and moved into place at the end, model.onnx
        // last, so an interrupted or failed build never leaves a folder that looks servable.
        var staging = Path.Combine(output, ".building-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(staging);
        try
        {
            var result = BuildInto(staging, checkpoint, config, options, cancellationToken);
            var segments = Directory.GetFiles(staging, "segment.*.onnx").Select(Path.GetFileName).OfType<string>();
            foreach (var stale in Directory.GetFiles(output, "segment.*.onnx"))
            {
                // An earlier split build's segments must not outlive a build without them (or with fewer).
                File.Delete(stale);
            }

            string[] order = [DataFileName, .. CopiedFiles, .. segments, GenAiConfigFileName, GraphFileName];
            foreach (var name in order)
            {
                var staged = Path.Combine(staging, name);
                var target = Path.Combine(output, name);
                if (File.Exists(staged))
                {
                    File.Move(staged, target, overwrite: true);
                }
                else if (File.Exists(target))
                {
                    // A file an earlier build copied that this checkpoint lacks (a tokenizer, say) must not linger.
                    File.Delete(target);
                }
            }

            return result with { ModelPath = Path.Combine(output, GraphFileName), DataPath = Path.Combine(output, DataFileName) };
        }
        finally
        {
            Directory.Delete(staging, recursive: true);
        }
    }

    /// <summary>
    /// Checks the dtype and device names and their combination: fp32 builds the dense graph for cpu or cuda; fp16 and
    /// bf16 build the paged graph, which only the CUDA provider runs.
    /// </summary>
    /// <exception cref="ModelBuildException">An unknown name or an unsupported combination; the message says what to pass.</exception>
    public static void Validate(BuildOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.DType is "fp8" or "float8" or "fp8_e4m3")
        {
            throw new ModelBuildException($"--dtype {options.DType}: not supported: ONNX Runtime has no weight-only fp8 MatMul (its GemmFloat8 wants fp8 activations too; docs/adr/0006); use int4 (4-bit MatMulNBits) or fp16");
        }

        if (options.DType is not ("fp32" or "fp16" or "bf16" or "int4"))
        {
            throw new ModelBuildException($"--dtype {options.DType}: unknown; use fp32, fp16, bf16 or int4");
        }

        if (Array.IndexOf(Int4Quantizer.BlockSizes, options.Int4BlockSize) < 0)
        {
            throw new ModelBuildException($"--int4-block-size {options.Int4BlockSize}: use 32 or 128");
        }

        if (options.DType != "int4" && (options.Int4ZeroPoints || options.Int4BlockSize != 32))
        {
            throw new ModelBuildException($"--int4-block-size and --int4-zero-points apply to --dtype int4, not {options.DType}");
        }

        if (options.MlaAttention is not ("gather" or "latent" or "mha"))
        {
            throw new ModelBuildException($"--mla-attention {options.MlaAttention}: unknown; use gather, latent or mha");
        }

        if (options.Device is not ("cpu" or "cuda"))
        {
            throw new ModelBuildException($"--device {options.Device}: unknown; use cpu or cuda");
        }

        if (options.Split && (options.DType == "int4" || options.Graph != "auto"))
        {
            throw new ModelBuildException($"--split builds fp32, fp16 or bf16 segment graphs beside the fused graph; build with --dtype fp32, fp16 or bf16 and --graph auto, not --dtype {options.DType} --graph {options.Graph}");
        }

        if (options.Graph is not ("auto" or "genai"))
        {
            throw new ModelBuildException($"--graph {options.Graph}: unknown; use auto or genai");
        }

        if (options.Graph == "genai" && (options.DType is not ("fp32" or "int4") || options.Device != "cpu"))
        {
            throw new ModelBuildException($"--graph genai is built for --device cpu with --dtype fp32 or int4, not {options.DType} on {options.Device}");
        }

        if (options.DType is "fp16" or "bf16" && options.Device != "cuda")
        {
            throw new ModelBuildException(
                $"--dtype {options.DType} needs --device cuda: the {options.DType} graph uses PagedAttention, which ONNX Runtime runs on CUDA only; "
                + "build with --device cuda, or with --dtype fp32 for the CPU");
        }
    }

    /// <summary>The graph flavor <paramref name="dtype"/> builds: <see cref="DenseGraph"/> for fp32, else <see cref="PagedGraph"/>.</summary>
    internal static string GraphFor(string dtype) => dtype == "fp32" ? DenseGraph : PagedGraph;

    /// <summary>As <see cref="GraphFor(string)"/>, with int4 following the device: dense on cpu, paged on cuda.</summary>
    internal static string GraphFor(string dtype, string device) => dtype == "int4" ? (device == "cuda" ? PagedGraph : DenseGraph) : GraphFor(dtype);

    /// <summary>The activation (and KV) element type of <paramref name="dtype"/> on <paramref name="device"/>: int4 runs fp32 on cpu, fp16 on cuda.</summary>
    private static string ActivationDType(string dtype, string device) => dtype == "int4" ? (device == "cuda" ? "fp16" : "fp32") : dtype;

    /// <summary>
    /// Why ONNX Runtime 1.31's PagedAttention would refuse <paramref name="mla"/>'s LATENT layer at its first step, or null:
    /// with RoPE inside the op (<c>do_rotary</c>) its checks want the head size (kv_lora_rank + qk_rope_head_dim) a
    /// multiple of 16 and the cos/sin table width (qk_rope_head_dim / 2) a multiple of 8 (seen on an H100, 2026-12-08:
    /// "head_size shall be a multiple of 16").
    /// </summary>
    internal static string? LatentShapeProblem(MlaConfig mla)
    {
        var head = mla.KvLoraRank + mla.QkRopeHeadDim;
        if (head % 16 != 0)
        {
            return $"ONNX Runtime's PagedAttention rotates only heads whose size is a multiple of 16, and kv_lora_rank + qk_rope_head_dim is {head}";
        }

        return mla.QkRopeHeadDim % 16 != 0
            ? $"ONNX Runtime's PagedAttention rotates only where qk_rope_head_dim is a multiple of 16 (its cos/sin tables a multiple of 8 wide), and it is {mla.QkRopeHeadDim}"
            : null;
    }

    private static BuildResult BuildInto(string folder, string checkpoint, DecoderConfig config, BuildOptions options, CancellationToken cancellationToken)
    {
        var modelPath = Path.Combine(folder, GraphFileName);
        var dataPath = Path.Combine(folder, DataFileName);
        var elementType = ElementTypes.FromName(ActivationDType(options.DType, options.Device));
        var genAi = options.Graph == "genai";
        var graph = genAi ? GenAiGraph : GraphFor(options.DType, options.Device);
        var int4 = options.DType == "int4";
        var paged = graph == PagedGraph;
        var latent = options.MlaAttention == "latent";
        if (latent && (!paged || config.Mla is null))
        {
            throw new ModelBuildException("--mla-attention latent applies to the paged graph (--device cuda, fp16 or bf16) of an MLA checkpoint");
        }

        if (latent && !options.AllowUnrunnableLatentShapes && LatentShapeProblem(config.Mla!) is { } problem)
        {
            throw new ModelBuildException($"--mla-attention latent: {problem}; build with --mla-attention gather (the default)");
        }

        var mha = options.MlaAttention == "mha";
        if (mha && (!paged || config.Mla is null))
        {
            throw new ModelBuildException("--mla-attention mha applies to the paged graph (--device cuda, fp16) of an MLA checkpoint");
        }

        if (mha && ActivationDType(options.DType, options.Device) is var activation && activation != "fp16")
        {
            throw new ModelBuildException(
                $"--mla-attention mha: ONNX Runtime's MultiHeadAttention has no {activation} CUDA kernel (fp16 and fp32 only); build with --dtype fp16, or with --mla-attention gather (the default)");
        }

        var attentionOp = paged ? (config.Mla is null ? PagedAttentionOp : latent ? PagedMlaLatentAttentionOp : mha ? PagedMlaMhaAttentionOp : PagedMlaAttentionOp) : genAi ? GroupQueryAttentionOp : AttentionOp;
        var kvBytes = KvBytesPerToken(config, ElementTypes.Size(elementType));
        long parameters;
        IReadOnlyList<SplitAttentionLayer>? split = null;
        using (var weights = SafetensorsCheckpoint.Open(checkpoint))
        using (var data = new ExternalDataWriter(dataPath))
        {
            var writer = new OnnxGraphWriter(data, elementType);
            var builder = new DecoderGraphBuilder(config, weights, writer)
            {
                AttentionMetadata = options.AttentionMetadata,
                FuseKernels = options.FuseKernels,
                MlaLatentAttention = latent,
                MlaMhaAttention = mha,
                Quantizer = int4 ? new Int4Quantizer(options.Int4BlockSize, options.Int4ZeroPoints) : null,
            };
            if (paged)
            {
                builder.BuildPaged(cancellationToken);
            }
            else if (genAi)
            {
                builder.BuildGenAi(cancellationToken);
            }
            else
            {
                builder.Build(cancellationToken);
            }

            if (options.Split)
            {
                split = new DecoderGraphBuilder(config, weights, writer) { FuseKernels = options.FuseKernels }.BuildSplit(
                    () => new OnnxGraphWriter(data, elementType),
                    (segment, segmentWriter) => segmentWriter.Save(
                        Path.Combine(folder, SegmentFileName(segment)),
                        DecoderGraphBuilder.IrVersion,
                        [(string.Empty, DecoderGraphBuilder.OnnxOpset), (DecoderGraphBuilder.PagedAttentionDomain, DecoderGraphBuilder.MicrosoftOpset)],
                        new Dictionary<string, string>(StringComparer.Ordinal) { ["inference_server.builder"] = "1", [GraphMetadataKey] = SplitGraph }),
                    cancellationToken);
            }

            parameters = writer.ParameterCount;
            List<(string, long)> opsets = [(string.Empty, DecoderGraphBuilder.OnnxOpset)];
            if (paged || int4 || genAi || options.FuseKernels)
            {
                opsets.Add((DecoderGraphBuilder.PagedAttentionDomain, DecoderGraphBuilder.MicrosoftOpset));
            }

            writer.Save(
                modelPath,
                DecoderGraphBuilder.IrVersion,
                opsets,
                new Dictionary<string, string>(StringComparer.Ordinal)
                {
                    ["inference_server.builder"] = "1",
                    ["inference_server.architecture"] = config.ModelType,
                    ["inference_server.attention_op"] = attentionOp,
                    ["inference_server.kv_bytes_per_token"] = kvBytes.ToString(CultureInfo.InvariantCulture),
                    [GraphMetadataKey] = graph,
                    [DTypeMetadataKey] = options.DType,
                });
        }

        cancellationToken.ThrowIfCancellationRequested();
        foreach (var name in CopiedFiles)
        {
            var source = Path.Combine(checkpoint, name);
            if (File.Exists(source))
            {
                File.Copy(source, Path.Combine(folder, name), overwrite: true);
            }
        }

        var result = new BuildResult(modelPath, dataPath, config.ModelType, config.LayerCount, parameters, kvBytes, attentionOp)
        {
            Graph = graph,
            DType = options.DType,
            Device = options.Device,
            Split = split,
        };
        File.WriteAllText(Path.Combine(folder, GenAiConfigFileName), GenAiConfig.Write(config, result));
        return result;
    }

    /// <summary>KV cache bytes per token over all layers (what the graph's cache shapes imply), <paramref name="elementSize"/> bytes an element.</summary>
    internal static long KvBytesPerToken(DecoderConfig config, int elementSize = sizeof(float))
    {
        long bytes = 0;
        for (var i = 0; i < config.LayerCount; i++)
        {
            if (config.Layers[i].HasAttention)
            {
                var (keyHeads, keyWidth, valueHeads, valueWidth) = DecoderGraphBuilder.KvShape(config, i);
                bytes += ((long)keyHeads * keyWidth + ((long)valueHeads * valueWidth)) * elementSize;
            }
        }

        return bytes;
    }
}
