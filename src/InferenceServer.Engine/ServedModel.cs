// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.KvCache;
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
        Names = [name];
        Spec = decoder.Spec;
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

    /// <summary>Every id clients may send as <c>model</c>: <see cref="Name"/> first, then its aliases.</summary>
    public IReadOnlyList<string> Names { get; private set; }

    /// <summary>Vocabulary, context length (capped by <see cref="LimitContext"/>) and KV layout.</summary>
    public ModelSpec Spec { get; private set; }

    /// <summary>Whether <paramref name="id"/> is one of <see cref="Names"/>.</summary>
    public bool Serves(string id)
    {
        foreach (var name in Names)
        {
            if (string.Equals(name, id, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Adds ids clients may send besides <see cref="Name"/> (vLLM's several <c>--served-model-name</c>s). Call before serving.</summary>
    public void AddAliases(IEnumerable<string> aliases)
    {
        ArgumentNullException.ThrowIfNull(aliases);
        var names = new List<string>(Names);
        foreach (var alias in aliases)
        {
            if (!string.IsNullOrWhiteSpace(alias) && !names.Contains(alias))
            {
                names.Add(alias);
            }
        }

        Names = names;
    }

    /// <summary>
    /// Caps the context length at <paramref name="maxContextLength"/> (vLLM's <c>--max-model-len</c>): requests, the KV
    /// plan and the reported <c>max_model_len</c> all use the cap. Call before serving.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The cap is not in [1, the model's context length].</exception>
    public void LimitContext(int maxContextLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxContextLength, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxContextLength, Decoder.Spec.ContextLength);
        Spec = Decoder.Spec with { ContextLength = maxContextLength };
    }

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

    /// <summary>
    /// The KV sizing negotiation, done once at startup: the store's block size for the one asked for
    /// (<see cref="IDecoderModel.ChooseBlockSize"/>), the blocks <paramref name="budget"/> buys at that size for this model
    /// (its context capped by <see cref="LimitContext"/>), and the runner over a store of that many. The runner reports
    /// what it holds (<see cref="IModelRunner.BlockCount"/>, <see cref="IModelRunner.BlockSize"/>); read those, never re-plan.
    /// </summary>
    /// <exception cref="InvalidOperationException">The budget holds less than one full-context sequence; the message names <c>--kv-cache-memory</c>.</exception>
    public IModelRunner CreateRunner(KvBudget budget)
    {
        var blockSize = Decoder.ChooseBlockSize(budget.BlockSize);
        if (budget.PoolMemory is { } sizes)
        {
            // One size per attention device: only a split model has several KV pools.
            if (Decoder is not SplitDecoderModel split)
            {
                throw new InvalidOperationException(
                    $"--kv-cache-memory with {sizes.Count} sizes sizes the pools of --attention-device entries, and this model runs fused (one KV pool); give one size");
            }

            return split.CreateRunner(budget.PlanPoolBlocks(Spec, blockSize, split.PoolFreeMemory()), blockSize);
        }

        var blocks = budget.PlanBlocks(Spec, blockSize, Decoder.DeviceFreeMemory);
        return Decoder.CreateRunner(blocks, blockSize);
    }

    /// <inheritdoc />
    public void Dispose() => Decoder.Dispose();
}
