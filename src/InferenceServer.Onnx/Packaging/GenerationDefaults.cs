// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;

namespace InferenceServer.Onnx.Packaging;

/// <summary>
/// Sampling defaults and stop tokens from <c>generation_config.json</c>; absent fields stay null so that the
/// engine's own defaults apply.
/// </summary>
public sealed record GenerationDefaults
{
    /// <summary>An empty set of defaults, used when the file is absent.</summary>
    public static GenerationDefaults None { get; } = new();

    /// <summary>End-of-sequence ids declared by the generation config (may extend the model config's).</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>Default temperature, when the file says <c>do_sample</c>.</summary>
    public double? Temperature { get; init; }

    /// <summary>Default nucleus probability.</summary>
    public double? TopP { get; init; }

    /// <summary>Default top-k.</summary>
    public int? TopK { get; init; }

    /// <summary>Default min-p (sampling only).</summary>
    public double? MinP { get; init; }

    /// <summary>Default repetition penalty.</summary>
    public double? RepetitionPenalty { get; init; }

    /// <summary>Parses <paramref name="json"/>; <paramref name="file"/> names the source in errors.</summary>
    public static GenerationDefaults Parse(string json, string file)
    {
        try
        {
            using var document = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true });
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new ModelPackageException(file, "must hold a JSON object");
            }

            var sample = root.TryGetProperty("do_sample", out var doSample) && doSample.ValueKind == JsonValueKind.True;
            return new GenerationDefaults
            {
                EosTokenIds = ModelConfig.ReadIds(root, "eos_token_id", file),
                Temperature = sample ? ReadDouble(root, "temperature") : null,
                TopP = sample ? ReadDouble(root, "top_p") : null,
                TopK = sample ? ModelConfig.ReadInt(root, "top_k", file) : null,
                MinP = sample ? ReadDouble(root, "min_p") : null,
                RepetitionPenalty = ReadDouble(root, "repetition_penalty"),
            };
        }
        catch (JsonException ex)
        {
            throw new ModelPackageException(file, $"is not valid JSON ({ex.Message})", ex);
        }
    }

    private static double? ReadDouble(JsonElement element, string name)
        => element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : null;
}
