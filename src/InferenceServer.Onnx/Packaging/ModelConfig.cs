// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;

namespace InferenceServer.Onnx.Packaging;

/// <summary>
/// The fields of a Hugging Face <c>config.json</c> that serving needs. Both RoPE conventions are read:
/// the older top-level <c>rope_theta</c>/<c>rope_scaling</c> and the newer <c>rope_parameters</c> object.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>The <c>model_type</c> (llama, qwen2, deepseek_v3, ...).</summary>
    public required string ModelType { get; init; }

    /// <summary>The vocabulary size the logits span.</summary>
    public required int VocabularySize { get; init; }

    /// <summary>Number of decoder layers.</summary>
    public required int LayerCount { get; init; }

    /// <summary>Longest sequence (prompt plus generated tokens) the model was built for.</summary>
    public required int MaxPositionEmbeddings { get; init; }

    /// <summary>RoPE base frequency, from either config convention; 10000 when absent.</summary>
    public required double RopeTheta { get; init; }

    /// <summary>RoPE scaling type (<c>default</c>, <c>linear</c>, <c>llama3</c>, <c>yarn</c>, ...).</summary>
    public required string RopeType { get; init; }

    /// <summary>Beginning-of-sequence token id, if any.</summary>
    public int? BosTokenId { get; init; }

    /// <summary>End-of-sequence token ids (configs give one id or a list).</summary>
    public required IReadOnlyList<int> EosTokenIds { get; init; }

    /// <summary>Padding token id, if any.</summary>
    public int? PadTokenId { get; init; }

    /// <summary>Parses <paramref name="json"/>; <paramref name="file"/> names the source in errors.</summary>
    public static ModelConfig Parse(string json, string file)
    {
        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            root = document.RootElement.Clone();
        }
        catch (JsonException ex)
        {
            throw new ModelPackageException(file, $"is not valid JSON ({ex.Message})", ex);
        }

        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new ModelPackageException(file, "must hold a JSON object");
        }

        // Multimodal and some composite configs nest the language model under text_config.
        var text = root.TryGetProperty("text_config", out var nested) && nested.ValueKind == JsonValueKind.Object ? nested : root;

        var vocab = ReadInt(text, "vocab_size", file) ?? throw new ModelPackageException(file, "has no 'vocab_size'");
        var layers = ReadInt(text, "num_hidden_layers", file) ?? throw new ModelPackageException(file, "has no 'num_hidden_layers'");
        var maxPositions = ReadInt(text, "max_position_embeddings", file) ?? ReadInt(text, "n_positions", file) ?? 2048;

        var theta = 10000.0;
        var ropeType = "default";
        if (text.TryGetProperty("rope_parameters", out var ropeParameters) && ropeParameters.ValueKind == JsonValueKind.Object)
        {
            theta = ReadDouble(ropeParameters, "rope_theta", file) ?? theta;
            ropeType = ReadString(ropeParameters, "rope_type") ?? ropeType;
        }
        else
        {
            theta = ReadDouble(text, "rope_theta", file) ?? theta;
            if (text.TryGetProperty("rope_scaling", out var scaling) && scaling.ValueKind == JsonValueKind.Object)
            {
                ropeType = ReadString(scaling, "rope_type") ?? ReadString(scaling, "type") ?? ropeType;
            }
        }

        return new ModelConfig
        {
            ModelType = ReadString(root, "model_type") ?? "unknown",
            VocabularySize = vocab,
            LayerCount = layers,
            MaxPositionEmbeddings = maxPositions,
            RopeTheta = theta,
            RopeType = ropeType,
            BosTokenId = ReadInt(root, "bos_token_id", file),
            EosTokenIds = ReadIds(root, "eos_token_id", file),
            PadTokenId = ReadInt(root, "pad_token_id", file),
        };
    }

    internal static int? ReadInt(JsonElement element, string name, string file)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var result))
        {
            return result;
        }

        throw new ModelPackageException(file, $"'{name}' must be an integer, not {value.ValueKind.ToString().ToLowerInvariant()}");
    }

    internal static IReadOnlyList<int> ReadIds(JsonElement element, string name, string file)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        if (value.ValueKind == JsonValueKind.Array)
        {
            var ids = new List<int>();
            foreach (var item in value.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out var id))
                {
                    throw new ModelPackageException(file, $"'{name}' must hold integers");
                }

                ids.Add(id);
            }

            return ids;
        }

        return [ReadInt(element, name, file)!.Value];
    }

    private static double? ReadDouble(JsonElement element, string name, string file)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number
            ? value.GetDouble()
            : throw new ModelPackageException(file, $"'{name}' must be a number");
    }

    private static string? ReadString(JsonElement element, string name)
        => element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
