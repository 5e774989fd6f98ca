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
        var inputs = session.InputMetadata;
        var outputs = session.OutputMetadata;

        RequireInput(inputs, InputIds, TensorElementType.Int64, file);
        RequireInput(inputs, AttentionMask, TensorElementType.Int64, file);
        var hasPositions = inputs.ContainsKey(PositionIds);
        if (hasPositions)
        {
            RequireInput(inputs, PositionIds, TensorElementType.Int64, file);
        }

        if (!outputs.TryGetValue(Logits, out var logits))
        {
            throw new ModelPackageException(file, "graph has no 'logits' output");
        }

        if (logits.ElementDataType != TensorElementType.Float)
        {
            throw new ModelPackageException(file, $"'logits' is {logits.ElementDataType}; this runner serves float32 graphs");
        }

        var layers = new List<LayerKvSpec>();
        for (var i = 0; inputs.ContainsKey($"past_key_values.{i}.key"); i++)
        {
            var (keyHeads, keyWidth) = ReadKvInput(inputs, $"past_key_values.{i}.key", file);
            var (valueHeads, valueWidth) = ReadKvInput(inputs, $"past_key_values.{i}.value", file);
            if (!outputs.ContainsKey($"present.{i}.key") || !outputs.ContainsKey($"present.{i}.value"))
            {
                throw new ModelPackageException(file, $"graph has past_key_values.{i} inputs but no present.{i}.key|value outputs");
            }

            layers.Add(new LayerKvSpec(i, keyHeads, keyWidth, valueHeads, valueWidth));
        }

        if (layers.Count == 0)
        {
            throw new ModelPackageException(file, "graph has no 'past_key_values.{i}.key|value' inputs; export the decoder with its KV cache (use_cache)");
        }

        var hasBranch = inputs.ContainsKey(UseCacheBranch);
        foreach (var name in inputs.Keys)
        {
            var known = name is InputIds or AttentionMask or PositionIds or UseCacheBranch || name.StartsWith("past_key_values.", StringComparison.Ordinal);
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
            ElementType = "float32",
        };
        return (spec, hasPositions, hasBranch);
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
