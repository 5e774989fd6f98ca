// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Text.Json;

namespace InferenceServer.Onnx.Packaging;

/// <summary>
/// The names of a dense decoder graph's inputs and outputs, and how its past/present rows are laid out: the Optimum
/// names by default, or what <c>genai_config.json</c>'s <c>model.decoder.inputs</c> / <c>outputs</c> say (the
/// onnxruntime-genai contract; ADR 0006). Per-layer names are formats with <c>%d</c> for the KV index.
/// </summary>
public sealed record DecoderIo
{
    /// <summary>The Optimum / Hugging Face names, right-padded past with holes (the server's own dense graph).</summary>
    public static DecoderIo Optimum { get; } = new();

    /// <summary>Token ids, int64 [batch, sequence].</summary>
    internal string InputIds { get; init; } = "input_ids";

    /// <summary>The attention mask, int64 [batch, total].</summary>
    internal string AttentionMask { get; init; } = "attention_mask";

    /// <summary>Positions, int64 [batch, sequence]; optional in the graph.</summary>
    internal string PositionIds { get; init; } = "position_ids";

    /// <summary>
    /// GroupQueryAttention's per-row last index (int32 [batch]) when the graph takes it as an input rather than computing
    /// it from the mask; fed only if the graph has an input of this name.
    /// </summary>
    internal string SeqlensK { get; init; } = "seqlens_k";

    /// <summary>GroupQueryAttention's total length (int32 scalar) when the graph takes it; fed only if the graph has it.</summary>
    internal string TotalSequenceLength { get; init; } = "total_sequence_length";

    /// <summary>The per-layer past key input, with <c>%d</c>.</summary>
    internal string PastKeyNames { get; init; } = "past_key_values.%d.key";

    /// <summary>The per-layer past value input, with <c>%d</c>.</summary>
    internal string PastValueNames { get; init; } = "past_key_values.%d.value";

    /// <summary>The logits output, float32 [batch, sequence, vocab].</summary>
    internal string Logits { get; init; } = "logits";

    /// <summary>The per-layer present key output, with <c>%d</c>.</summary>
    internal string PresentKeyNames { get; init; } = "present.%d.key";

    /// <summary>The per-layer present value output, with <c>%d</c>.</summary>
    internal string PresentValueNames { get; init; } = "present.%d.value";

    /// <summary>
    /// Whether each row's KV is contiguous from time 0 (GroupQueryAttention: row b's new tokens land right after its own
    /// past, at <c>seqlens_k[b] + 1 - S</c>, and the mask is one run of ones) instead of right-padded with holes and the
    /// new tokens at the batch's longest past (the server's dense graph). True for folders the GenAI builder wrote
    /// (a <c>genai_config.json</c> without this server's <c>inference_server</c> section) and for <c>genai-v1</c>.
    /// </summary>
    public bool ContiguousRows { get; init; }

    /// <summary>A per-layer name for KV index <paramref name="index"/>.</summary>
    public static string Format(string names, int index) => names.Replace("%d", index.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);

    /// <summary>
    /// Reads <c>model.decoder.inputs</c> / <c>outputs</c> of a <c>genai_config.json</c> (<paramref name="root"/>); names it
    /// lacks keep their defaults. <paramref name="graphKind"/> is the server builder's <c>inference_server.graph</c>, or null.
    /// </summary>
    internal static DecoderIo FromGenAiConfig(JsonElement root, string? graphKind)
    {
        var io = new DecoderIo { ContiguousRows = graphKind is null || graphKind == "genai-v1" };
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object
            || !model.TryGetProperty("decoder", out var decoder) || decoder.ValueKind != JsonValueKind.Object)
        {
            // Not a GenAI description of a decoder: the Optimum names, and the layout the builder's section implies.
            return Optimum with { ContiguousRows = graphKind == "genai-v1" };
        }

        if (decoder.TryGetProperty("inputs", out var inputs) && inputs.ValueKind == JsonValueKind.Object)
        {
            io = io with
            {
                InputIds = Name(inputs, "input_ids", io.InputIds),
                AttentionMask = Name(inputs, "attention_mask", io.AttentionMask),
                PositionIds = Name(inputs, "position_ids", io.PositionIds),
                SeqlensK = Name(inputs, "seqlens_k", io.SeqlensK),
                TotalSequenceLength = Name(inputs, "total_sequence_length", io.TotalSequenceLength),
                PastKeyNames = Name(inputs, "past_key_names", io.PastKeyNames),
                PastValueNames = Name(inputs, "past_value_names", io.PastValueNames),
            };
        }

        if (decoder.TryGetProperty("outputs", out var outputs) && outputs.ValueKind == JsonValueKind.Object)
        {
            io = io with
            {
                Logits = Name(outputs, "logits", io.Logits),
                PresentKeyNames = Name(outputs, "present_key_names", io.PresentKeyNames),
                PresentValueNames = Name(outputs, "present_value_names", io.PresentValueNames),
            };
        }

        return io;
    }

    private static string Name(JsonElement section, string key, string fallback) =>
        section.TryGetProperty(key, out var value) && value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } name ? name : fallback;
}
