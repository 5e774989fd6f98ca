// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using InferenceServer.Builder;
using InferenceServer.Builder.Checkpoint;

namespace InferenceServer.Onnx.Packaging;

/// <summary>
/// The fields of a Hugging Face <c>config.json</c> that serving needs, read by the builder's parser
/// (<see cref="DecoderConfig.ParseForServing"/>: one parse of the file for the builder and the runtime). Both RoPE
/// conventions are read: the older top-level <c>rope_theta</c>/<c>rope_scaling</c> and the newer <c>rope_parameters</c>.
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

    /// <summary>
    /// The whole parse (sizes, per-layer shapes, MLA, MoH, RoPE), as the builder reads it: one parser of
    /// <c>config.json</c> for both (<see cref="DecoderConfig.ParseForServing"/>); null only for a config built in code.
    /// </summary>
    internal DecoderConfig? Checkpoint { get; private init; }

    /// <summary>Parses <paramref name="json"/>; <paramref name="file"/> names the source in errors.</summary>
    /// <exception cref="ModelPackageException">The text is not a JSON object, lacks <c>vocab_size</c> or <c>num_hidden_layers</c>, or has a malformed field.</exception>
    public static ModelConfig Parse(string json, string file)
    {
        DecoderConfig config;
        try
        {
            config = DecoderConfig.ParseForServing(json, file);
        }
        catch (ModelBuildException ex)
        {
            // The builder's messages start with the source they were given: the file, which the exception names itself.
            var problem = ex.Message.StartsWith(file + ": ", StringComparison.Ordinal) ? ex.Message[(file.Length + 2)..] : ex.Message;
            throw new ModelPackageException(file, problem, ex);
        }

        return new ModelConfig
        {
            ModelType = config.ModelType,
            VocabularySize = config.VocabSize,
            LayerCount = config.LayerCount,
            MaxPositionEmbeddings = config.MaxPositionEmbeddings,
            RopeTheta = config.Rope.Theta,
            RopeType = config.Rope.Type,
            BosTokenId = config.BosTokenId,
            EosTokenIds = config.EosTokenIds,
            PadTokenId = config.PadTokenId,
            Checkpoint = config,
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
}
