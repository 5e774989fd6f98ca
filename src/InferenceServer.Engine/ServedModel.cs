// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;
using InferenceServer.Tokenization;

namespace InferenceServer.Engine;

/// <summary>
/// A model ready to serve: its package, its ONNX decoder, its tokenizer (absent in token-only mode) and the ids that
/// end a sequence. Created once at startup.
/// </summary>
public sealed class ServedModel : IDisposable
{
    private ServedModel(string name, ModelPackage package, IDecoderModel decoder, HfTokenizer? tokenizer, IReadOnlyList<int> eosTokenIds)
    {
        Name = name;
        Package = package;
        Decoder = decoder;
        Tokenizer = tokenizer;
        EosTokenIds = eosTokenIds;
    }

    /// <summary>The model id clients use (the folder name unless configured otherwise).</summary>
    public string Name { get; }

    /// <summary>The model folder's metadata.</summary>
    public ModelPackage Package { get; }

    /// <summary>The decoder graph: a dense-past graph on the host KV pages, or a paged graph with its KV on the device.</summary>
    public IDecoderModel Decoder { get; }

    /// <summary>Vocabulary, context length and KV layout.</summary>
    public ModelSpec Spec => Decoder.Spec;

    /// <summary>The tokenizer, or null when the folder has none (token-id prompts only).</summary>
    public HfTokenizer? Tokenizer { get; }

    /// <summary>End-of-sequence ids from <c>config.json</c> and <c>generation_config.json</c>.</summary>
    public IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>Loads the model in <paramref name="directory"/>, served as <paramref name="servedName"/> (default: the folder name).</summary>
    /// <exception cref="ModelPackageException">The folder is not a servable model; the message names the file.</exception>
    public static ServedModel Load(string directory, string? servedName = null, OnnxSessionOptions? sessionOptions = null)
    {
        var package = ModelPackage.Load(directory);
        HfTokenizer? tokenizer = null;
        if (package.TokenizerPath is { } tokenizerPath)
        {
            try
            {
                tokenizer = HfTokenizer.Load(tokenizerPath);
            }
            catch (TokenizerLoadException ex)
            {
                throw new ModelPackageException(tokenizerPath, ex.Message, ex);
            }
        }

        var eos = new List<int>(package.Config.EosTokenIds);
        foreach (var id in package.Generation.EosTokenIds)
        {
            if (!eos.Contains(id))
            {
                eos.Add(id);
            }
        }

        var decoder = DecoderModels.Open(package, sessionOptions);
        return new ServedModel(string.IsNullOrWhiteSpace(servedName) ? package.Name : servedName, package, decoder, tokenizer, eos);
    }

    /// <summary>Creates the runner that executes steps over a KV store of <paramref name="blockCount"/> blocks.</summary>
    public IModelRunner CreateRunner(int blockCount, int blockSize) => Decoder.CreateRunner(blockCount, blockSize);

    /// <inheritdoc />
    public void Dispose() => Decoder.Dispose();
}
