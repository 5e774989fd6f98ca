// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;

namespace InferenceServer.Onnx.Packaging;

/// <summary>
/// A model folder in the Hugging Face Optimum / transformers.js layout: <c>config.json</c>, the graph as
/// <c>model.onnx</c> or <c>onnx/model.onnx</c> (external data beside it), and optionally
/// <c>generation_config.json</c>, <c>tokenizer.json</c> and <c>tokenizer_config.json</c>.
/// Loading reads only the small JSON files; the graph is opened by <see cref="Runtime.OnnxDecoderModel"/>.
/// </summary>
public sealed class ModelPackage
{
    private ModelPackage(string directory, ModelConfig config, GenerationDefaults generation, string graphPath, string? tokenizerPath, string? tokenizerConfigPath, string? graphKind, DecoderIo io)
    {
        GraphKind = graphKind;
        Io = io;
        Directory = directory;
        Config = config;
        Generation = generation;
        GraphPath = graphPath;
        TokenizerPath = tokenizerPath;
        TokenizerConfigPath = tokenizerConfigPath;
    }

    /// <summary>The folder's full path.</summary>
    public string Directory { get; }

    /// <summary>The folder name, the default served model id.</summary>
    public string Name => Path.GetFileName(Directory.TrimEnd(Path.DirectorySeparatorChar));

    /// <summary>The parsed <c>config.json</c>.</summary>
    public ModelConfig Config { get; }

    /// <summary>The parsed <c>generation_config.json</c>, or <see cref="GenerationDefaults.None"/>.</summary>
    public GenerationDefaults Generation { get; }

    /// <summary>Full path of the ONNX graph.</summary>
    public string GraphPath { get; }

    /// <summary>Full path of <c>tokenizer.json</c>, or null for a token-only model.</summary>
    internal string? TokenizerPath { get; }

    /// <summary>Full path of <c>tokenizer_config.json</c>, if present.</summary>
    public string? TokenizerConfigPath { get; }

    /// <summary>
    /// The graph convention this server's builder recorded in <c>genai_config.json</c> (<c>inference_server.graph</c>:
    /// <c>dense-v1</c> or <c>paged-v1</c>), or null for a folder the builder did not write. Known before the graph is
    /// opened, so that a session can be made once with the options its kind needs.
    /// </summary>
    public string? GraphKind { get; }

    /// <summary>
    /// The dense graph's input/output names and row layout: from <c>genai_config.json</c>'s <c>model.decoder</c> when the
    /// folder has one, else <see cref="DecoderIo.Optimum"/> (ADR 0006).
    /// </summary>
    public DecoderIo Io { get; }

    /// <summary>Loads the package metadata from <paramref name="directory"/>.</summary>
    /// <exception cref="ModelPackageException">The folder is not a servable model.</exception>
    public static ModelPackage Load(string directory)
    {
        var full = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(full))
        {
            throw new ModelPackageException(full, "model folder does not exist");
        }

        var configPath = Path.Combine(full, "config.json");
        if (!File.Exists(configPath))
        {
            throw new ModelPackageException(configPath, "missing; a model folder needs config.json");
        }

        var config = ModelConfig.Parse(ReadText(configPath), configPath);

        var generationPath = Path.Combine(full, "generation_config.json");
        var generation = File.Exists(generationPath)
            ? GenerationDefaults.Parse(ReadText(generationPath), generationPath)
            : GenerationDefaults.None;

        var graph = FindGraph(full);
        var genAiPath = Path.Combine(full, "genai_config.json");
        var (graphKind, io) = File.Exists(genAiPath) ? ReadGenAiConfig(ReadText(genAiPath), genAiPath) : (null, DecoderIo.Optimum);

        var tokenizer = Path.Combine(full, "tokenizer.json");
        var tokenizerConfig = Path.Combine(full, "tokenizer_config.json");
        return new ModelPackage(
            full,
            config,
            generation,
            graph,
            File.Exists(tokenizer) ? tokenizer : null,
            File.Exists(tokenizerConfig) ? tokenizerConfig : null,
            graphKind,
            io);
    }

    private static (string? GraphKind, DecoderIo Io) ReadGenAiConfig(string json, string path)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return (null, DecoderIo.Optimum);
            }

            var hasSection = document.RootElement.TryGetProperty("inference_server", out var section) && section.ValueKind == JsonValueKind.Object;
            var graphKind = hasSection && section.TryGetProperty("graph", out var graph) && graph.ValueKind == JsonValueKind.String
                ? graph.GetString()
                : null;

            // A section without a graph name is the builder's too (an older build): the Optimum layout.
            return (graphKind, DecoderIo.FromGenAiConfig(document.RootElement, hasSection ? graphKind ?? "dense-v1" : null));
        }
        catch (JsonException ex)
        {
            throw new ModelPackageException(path, $"is not valid JSON ({ex.Message})", ex);
        }
    }

    private static string FindGraph(string directory)
    {
        string[] candidates = [Path.Combine(directory, "model.onnx"), Path.Combine(directory, "onnx", "model.onnx")];
        foreach (var candidate in candidates)
        {
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new ModelPackageException(Path.Combine(directory, "model.onnx"), "missing; expected the graph at model.onnx or onnx/model.onnx");
    }

    private static string ReadText(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException ex)
        {
            throw new ModelPackageException(path, $"cannot be read ({ex.Message})", ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new ModelPackageException(path, $"cannot be read ({ex.Message})", ex);
        }
    }
}
