// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Packaging;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Runtime;

/// <summary>Reading the model spec from the graph's own inputs and outputs.</summary>
public sealed partial class OnnxDecoderModel
{
    private static (ModelSpec Spec, bool HasPositionIds, bool HasUseCacheBranch) Inspect(InferenceSession session, ModelPackage package)
    {
        var file = package.GraphPath;
        var io = package.Io;
        var inputs = session.InputMetadata;
        var outputs = session.OutputMetadata;

        RequireInput(inputs, io.InputIds, TensorElementType.Int64, file);
        RequireInput(inputs, io.AttentionMask, TensorElementType.Int64, file);
        var hasPositions = inputs.ContainsKey(io.PositionIds);
        if (hasPositions)
        {
            RequireInput(inputs, io.PositionIds, TensorElementType.Int64, file);
        }

        if (inputs.ContainsKey(io.SeqlensK))
        {
            RequireInput(inputs, io.SeqlensK, TensorElementType.Int32, file);
        }

        if (inputs.ContainsKey(io.TotalSequenceLength))
        {
            RequireInput(inputs, io.TotalSequenceLength, TensorElementType.Int32, file);
        }

        if (!outputs.TryGetValue(io.Logits, out var logits))
        {
            throw new ModelPackageException(file, $"graph has no '{io.Logits}' output");
        }

        if (logits.ElementDataType != TensorElementType.Float)
        {
            throw new ModelPackageException(file, $"'logits' is {logits.ElementDataType}; this runner serves float32 graphs");
        }

        var layers = new List<LayerKvSpec>();
        for (var i = 0; inputs.ContainsKey(DecoderIo.Format(io.PastKeyNames, i)); i++)
        {
            var (keyHeads, keyWidth) = ReadKvInput(inputs, DecoderIo.Format(io.PastKeyNames, i), file);
            var (valueHeads, valueWidth) = ReadKvInput(inputs, DecoderIo.Format(io.PastValueNames, i), file);
            if (!outputs.ContainsKey(DecoderIo.Format(io.PresentKeyNames, i)) || !outputs.ContainsKey(DecoderIo.Format(io.PresentValueNames, i)))
            {
                throw new ModelPackageException(file, $"graph has {DecoderIo.Format(io.PastKeyNames, i)} but not both {DecoderIo.Format(io.PresentKeyNames, i)} and {DecoderIo.Format(io.PresentValueNames, i)}");
            }

            layers.Add(new LayerKvSpec(i, keyHeads, keyWidth, valueHeads, valueWidth));
        }

        if (layers.Count == 0)
        {
            throw new ModelPackageException(file, $"graph has no '{io.PastKeyNames}' inputs (%d the layer); export the decoder with its KV cache (use_cache)");
        }

        var hasBranch = inputs.ContainsKey(UseCacheBranch);
        foreach (var name in inputs.Keys)
        {
            var known = name == io.InputIds || name == io.AttentionMask || name == io.PositionIds || name == io.SeqlensK
                || name == io.TotalSequenceLength || name == UseCacheBranch || IsKvName(name, io.PastKeyNames, layers.Count) || IsKvName(name, io.PastValueNames, layers.Count);
            if (!known)
            {
                throw new ModelPackageException(file, $"graph input '{name}' is not one this runner can feed");
            }
        }

        var vocab = logits.Dimensions.Length == 3 && logits.Dimensions[2] > 0 ? logits.Dimensions[2] : package.Config.VocabularySize;
        var spec = new ModelSpec
        {
            VocabularySize = vocab,
            ContextLength = package.Config.MaxPositionEmbeddings,
            KvLayers = layers,
            AttentionLayers = AttentionLayout.FromConfig(package.Config),
            ElementType = KvElementType.Float32,
        };
        return (spec, hasPositions, hasBranch);
    }

    private static bool IsKvName(string name, string names, int count)
    {
        for (var i = 0; i < count; i++)
        {
            if (name == DecoderIo.Format(names, i))
            {
                return true;
            }
        }

        return false;
    }

    private static void RequireInput(IReadOnlyDictionary<string, NodeMetadata> inputs, string name, TensorElementType type, string file)
    {
        if (!inputs.TryGetValue(name, out var metadata))
        {
            throw new ModelPackageException(file, $"graph has no '{name}' input");
        }

        if (metadata.ElementDataType != type)
        {
            throw new ModelPackageException(file, $"graph input '{name}' is {metadata.ElementDataType}, expected {type}");
        }
    }

    private static (int Heads, int Width) ReadKvInput(IReadOnlyDictionary<string, NodeMetadata> inputs, string name, string file)
    {
        if (!inputs.TryGetValue(name, out var metadata))
        {
            throw new ModelPackageException(file, $"graph has no '{name}' input");
        }

        if (metadata.ElementDataType != TensorElementType.Float)
        {
            throw new ModelPackageException(file, $"graph input '{name}' is {metadata.ElementDataType}; this runner serves float32 KV caches");
        }

        var dims = metadata.Dimensions;
        if (dims.Length != 4 || dims[1] <= 0 || dims[3] <= 0)
        {
            throw new ModelPackageException(file, $"graph input '{name}' has shape [{string.Join(", ", dims)}]; expected [batch, heads, past, width] with fixed heads and width");
        }

        return (dims[1], dims[3]);
    }
}
