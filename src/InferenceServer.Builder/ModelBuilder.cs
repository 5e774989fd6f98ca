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
    public const string GraphFileName = "model.onnx";

    /// <summary>The external-data file name.</summary>
    public const string DataFileName = "model.onnx.data";

    /// <summary>The metadata file name.</summary>
    public const string GenAiConfigFileName = "genai_config.json";

    /// <summary>The qualified op type of the per-layer attention nodes the builder emits.</summary>
    public const string AttentionOp = "ai.onnx." + DecoderGraphBuilder.AttentionOpType;


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
        if (options.DType != "fp32")
        {
            throw new ModelBuildException($"--dtype {options.DType} is not supported yet; the builder writes fp32");
        }

        if (options.Device != "cpu")
        {
            throw new ModelBuildException($"--device {options.Device} is not supported yet; the builder targets cpu ");
        }

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
            var result = BuildInto(staging, checkpoint, config, cancellationToken);
            string[] order = [DataFileName, .. CopiedFiles, GenAiConfigFileName, GraphFileName];
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

    private static BuildResult BuildInto(string folder, string checkpoint, DecoderConfig config, CancellationToken cancellationToken)
    {
        var modelPath = Path.Combine(folder, GraphFileName);
        var dataPath = Path.Combine(folder, DataFileName);
        var kvBytes = KvBytesPerToken(config);
        long parameters;
        using (var weights = SafetensorsCheckpoint.Open(checkpoint))
        using (var data = new ExternalDataWriter(dataPath))
        {
            var writer = new OnnxGraphWriter(data);
            new DecoderGraphBuilder(config, weights, writer).Build(cancellationToken);
            parameters = writer.ParameterCount;
            writer.Save(
                modelPath,
                DecoderGraphBuilder.IrVersion,
                [(string.Empty, DecoderGraphBuilder.OnnxOpset)],
                new Dictionary<string, string>(StringComparer.Ordinal)
                {
                    ["inference_server.builder"] = "1",
                    ["inference_server.architecture"] = config.ModelType,
                    ["inference_server.attention_op"] = AttentionOp,
                    ["inference_server.kv_bytes_per_token"] = kvBytes.ToString(CultureInfo.InvariantCulture),
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

        var result = new BuildResult(modelPath, dataPath, config.ModelType, config.LayerCount, parameters, kvBytes, AttentionOp);
        File.WriteAllText(Path.Combine(folder, GenAiConfigFileName), GenAiConfig.Write(config, result));
        return result;
    }

    /// <summary>fp32 KV cache bytes per token over all layers (what the graph's past/present shapes imply).</summary>
    internal static long KvBytesPerToken(DecoderConfig config)
    {
        long bytes = 0;
        for (var i = 0; i < config.LayerCount; i++)
        {
            if (config.Layers[i].HasAttention)
            {
                var (keyHeads, keyWidth, valueHeads, valueWidth) = DecoderGraphBuilder.KvShape(config, i);
                bytes += ((long)keyHeads * keyWidth + ((long)valueHeads * valueWidth)) * sizeof(float);
            }
        }

        return bytes;
    }
}
