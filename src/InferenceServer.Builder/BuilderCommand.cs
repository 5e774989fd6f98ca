// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;

namespace InferenceServer.Builder;

/// <summary>
/// The <c>build</c> command: <c>InferenceServer build --checkpoint &lt;dir&gt; --out &lt;dir&gt; [--dtype fp32|fp16|bf16|int4] [--device cpu|cuda]</c>.
/// The host calls <see cref="RunAsync(string[])"/> with its arguments (a leading <c>build</c> verb is accepted and skipped).
/// </summary>
public static class BuilderCommand
{
    /// <summary>The usage line.</summary>
    public const string Usage =
        "usage: InferenceServer build --checkpoint <dir> --out <dir> [--dtype fp32|fp16|bf16|int4] [--device cpu|cuda]\n"
        + "                              [--attention-metadata on|off] [--int4-block-size 32|128] [--int4-zero-points]\n"
        + "                              [--graph auto|genai] [--split] [--fuse on|off] [--mla-attention gather|latent|mha]\n"
        + "  fp32 (default): the dense graph, for cpu (default) or cuda; fp16/bf16: the paged graph, --device cuda only;\n"
        + "  int4: projections as 4-bit MatMulNBits (block size 32 by default; symmetric unless --int4-zero-points),\n"
        + "        the rest fp32 in the dense graph on cpu, fp16 in the paged graph on cuda;\n"
        + "  --graph genai: the onnxruntime-genai contract (GroupQueryAttention, seqlens_k), fp32 or int4 on cpu;\n"
        + "  --attention-metadata (paged graph; default on): PagedAttention gets the step's length bounds from the host;\n"
        + "  --split: also the split form for attention offloading (segment.{s}.onnx in the --dtype, fp32/fp16/bf16; ADR 0005);\n"
        + "  --fuse (default on): fused residual+RMSNorm and one gate|up GEMM per layer (ADR 0007); off for before/after counts;\n"
        + "  --mla-attention gather|latent|mha (paged MLA graph; default gather): latent calls PagedAttention's LATENT layout (ADR 0008; ~12x slower per layer on an H100; rank + rope and rope multiples of 16);\n"
        + "        mha attends the gathered blocks with one MultiHeadAttention a layer (fp16 only; not yet timed on a GPU)";

    /// <summary>Runs the command on the console; returns the process exit code (0 ok, 1 build failed, 2 bad arguments).</summary>
    public static Task<int> RunAsync(string[] args) => RunAsync(args, Console.Out, Console.Error, CancellationToken.None);

    /// <summary>Runs the command writing to <paramref name="output"/> and <paramref name="error"/>; returns the exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (!TryParse(args, out var options, out var problem))
        {
            await error.WriteLineAsync(problem.AsMemory(), cancellationToken).ConfigureAwait(false);
            await error.WriteLineAsync(Usage.AsMemory(), cancellationToken).ConfigureAwait(false);
            return 2;
        }

        try
        {
            var result = await Task.Run(() => ModelBuilder.Build(options!, cancellationToken), cancellationToken).ConfigureAwait(false);
            var line = string.Create(
                CultureInfo.InvariantCulture,
                $"built {result.Architecture} ({result.Graph}, {result.DType}, {result.Device}): {result.LayerCount} layers, {result.ParameterCount} parameters, {result.KvBytesPerToken} KV bytes/token, attention {result.AttentionOp} -> {result.ModelPath}");
            await output.WriteLineAsync(line.AsMemory(), cancellationToken).ConfigureAwait(false);
            return 0;
        }
        catch (ModelBuildException ex)
        {
            await error.WriteLineAsync($"build failed: {ex.Message}".AsMemory(), cancellationToken).ConfigureAwait(false);
            return 1;
        }
        catch (IOException ex)
        {
            await error.WriteLineAsync($"build failed: {ex.Message}".AsMemory(), cancellationToken).ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>Parses the arguments; on failure <paramref name="problem"/> says why.</summary>
    internal static bool TryParse(string[] args, out BuildOptions? options, out string problem)
    {
        options = null;
        string? checkpoint = null;
        string? output = null;
        var dtype = "fp32";
        var device = "cpu";
        var attentionMetadata = true;
        var split = false;
        var int4BlockSize = 32;
        var int4ZeroPoints = false;
        var graph = "auto";
        var fuse = true;
        var mlaAttention = "gather";
        var start = args.Length > 0 && args[0] == "build" ? 1 : 0;
        for (var i = start; i < args.Length; i++)
        {
            var name = args[i];
            if (name == "--split")
            {
                split = true;
                continue;
            }

            if (name == "--int4-zero-points")
            {
                int4ZeroPoints = true;
                continue;
            }

            if (name is not ("--checkpoint" or "--out" or "--dtype" or "--device" or "--attention-metadata" or "--int4-block-size" or "--graph" or "--fuse" or "--mla-attention"))
            {
                problem = $"unknown argument '{name}'";
                return false;
            }

            if (i + 1 >= args.Length)
            {
                problem = $"{name} needs a value";
                return false;
            }

            var value = args[++i];
            switch (name)
            {
                case "--checkpoint":
                    checkpoint = value;
                    break;
                case "--out":
                    output = value;
                    break;
                case "--dtype":
                    dtype = value;
                    break;
                case "--attention-metadata" or "--fuse":
                    if (value is not ("on" or "off"))
                    {
                        problem = $"{name} must be on or off, not '{value}'";
                        return false;
                    }

                    if (name == "--fuse")
                    {
                        fuse = value == "on";
                    }
                    else
                    {
                        attentionMetadata = value == "on";
                    }

                    break;
                case "--graph":
                    graph = value;
                    break;
                case "--mla-attention":
                    mlaAttention = value;
                    break;
                case "--int4-block-size":
                    if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int4BlockSize))
                    {
                        problem = $"--int4-block-size must be 32 or 128, not '{value}'";
                        return false;
                    }

                    break;
                default:
                    device = value;
                    break;
            }
        }

        if (checkpoint is null || output is null)
        {
            problem = "--checkpoint and --out are required";
            return false;
        }

        var parsed = new BuildOptions { CheckpointDirectory = checkpoint, OutputDirectory = output, DType = dtype, Device = device, AttentionMetadata = attentionMetadata, Split = split, Int4BlockSize = int4BlockSize, Int4ZeroPoints = int4ZeroPoints, Graph = graph, FuseKernels = fuse, MlaAttention = mlaAttention };
        try
        {
            ModelBuilder.Validate(parsed);
        }
        catch (ModelBuildException ex)
        {
            problem = ex.Message;
            return false;
        }

        options = parsed;
        problem = string.Empty;
        return true;
    }
}
