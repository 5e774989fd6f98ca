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

    /// <summary>Width of the residual stream (<c>hidden_size</c>, or GPT-2's <c>n_embd</c>), if given.</summary>
    internal int? HiddenSize { get; init; }

    /// <summary>Query heads per layer (<c>num_attention_heads</c>, or <c>n_head</c>), if given.</summary>
    internal int? HeadCount { get; init; }

    /// <summary>Key/value heads per layer (<c>num_key_value_heads</c>; default: the query heads).</summary>
    internal int? KvHeadCount { get; init; }

    /// <summary>Width of one head (<c>head_dim</c>; default: hidden size / heads).</summary>
    internal int? HeadDim { get; init; }

    /// <summary>Share of each head RoPE rotates (<c>partial_rotary_factor</c>, from the RoPE parameters or the top level; default 1).</summary>
    internal double PartialRotaryFactor { get; init; } = 1.0;

    /// <summary>The RoPE scaling <c>factor</c> (default 1).</summary>
    internal double RopeFactor { get; init; } = 1.0;

    /// <summary>YaRN's <c>mscale_all_dim</c>, if given (MLA's score scale depends on it).</summary>
    internal double? MscaleAllDim { get; init; }

    /// <summary>
    /// Per-layer query and KV heads of a pruned checkpoint (<c>block_configs</c>; 0 and 0 for a layer whose attention is
    /// <c>no_op</c>), or null when every layer has the model-level counts.
    /// </summary>
    internal IReadOnlyList<(int Heads, int KvHeads)>? LayerHeads { get; init; }

    /// <summary>Mixture-of-Head routing (<c>moh</c>): always-on heads and routed heads active per token, or null.</summary>
    internal (int SharedHeads, int RoutedActiveHeads)? Moh { get; init; }

    /// <summary>DeepSeek's latent attention sizes (<c>kv_lora_rank</c>, <c>qk_nope_head_dim</c>, <c>qk_rope_head_dim</c>, <c>v_head_dim</c>), or null.</summary>
    internal (int KvLoraRank, int QkNopeHeadDim, int QkRopeHeadDim, int VHeadDim)? Mla { get; init; }

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
        JsonElement? rope = null;
        if (text.TryGetProperty("rope_parameters", out var ropeParameters) && ropeParameters.ValueKind == JsonValueKind.Object)
        {
            theta = ReadDouble(ropeParameters, "rope_theta", file) ?? theta;
            ropeType = ReadString(ropeParameters, "rope_type") ?? ropeType;
            rope = ropeParameters;
        }
        else
        {
            theta = ReadDouble(text, "rope_theta", file) ?? theta;
            if (text.TryGetProperty("rope_scaling", out var scaling) && scaling.ValueKind == JsonValueKind.Object)
            {
                ropeType = ReadString(scaling, "rope_type") ?? ReadString(scaling, "type") ?? ropeType;
                rope = scaling;
            }
        }

        var hidden = ReadInt(text, "hidden_size", file) ?? ReadInt(text, "n_embd", file);
        var heads = ReadInt(text, "num_attention_heads", file) ?? ReadInt(text, "n_head", file);
        var kvHeads = ReadInt(text, "num_key_value_heads", file) ?? heads;
        var headDim = ReadInt(text, "head_dim", file) ?? (hidden is { } h && heads is > 0 ? h / heads : null);

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
            HiddenSize = hidden,
            HeadCount = heads,
            KvHeadCount = kvHeads,
            HeadDim = headDim,
            PartialRotaryFactor = (rope is { } r1 ? ReadDouble(r1, "partial_rotary_factor", file) : null) ?? ReadDouble(text, "partial_rotary_factor", file) ?? 1.0,
            RopeFactor = (rope is { } r2 ? ReadDouble(r2, "factor", file) : null) ?? 1.0,
            MscaleAllDim = rope is { } r3 ? ReadDouble(r3, "mscale_all_dim", file) : null,
            LayerHeads = ReadLayerHeads(text, file, layers, heads ?? 0, kvHeads ?? 0),
            Moh = ReadMoh(text, file),
            Mla = ReadInt(text, "kv_lora_rank", file) is { } rank
                ? (rank, ReadInt(text, "qk_nope_head_dim", file) ?? 0, ReadInt(text, "qk_rope_head_dim", file) ?? 0, ReadInt(text, "v_head_dim", file) ?? 0)
                : null,
        };
    }

    private static (int Heads, int KvHeads)[]? ReadLayerHeads(JsonElement text, string file, int layerCount, int heads, int kvHeads)
    {
        if (!text.TryGetProperty("block_configs", out var blocks) || blocks.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        if (blocks.GetArrayLength() != layerCount)
        {
            throw new ModelPackageException(file, $"'block_configs' has {blocks.GetArrayLength()} entries for {layerCount} layers");
        }

        var layers = new (int Heads, int KvHeads)[layerCount];
        var i = 0;
        foreach (var block in blocks.EnumerateArray())
        {
            var attention = block.ValueKind == JsonValueKind.Object && block.TryGetProperty("attention", out var a) && a.ValueKind == JsonValueKind.Object ? a : default;
            var noOp = attention.ValueKind == JsonValueKind.Object && attention.TryGetProperty("no_op", out var flag) && flag.ValueKind == JsonValueKind.True;
            layers[i++] = noOp
                ? (0, 0)
                : attention.ValueKind == JsonValueKind.Object
                    ? (ReadInt(attention, "num_attention_heads", file) ?? heads, ReadInt(attention, "num_key_value_heads", file) ?? kvHeads)
                    : (heads, kvHeads);
        }

        return layers;
    }

    private static (int SharedHeads, int RoutedActiveHeads)? ReadMoh(JsonElement text, string file)
        => text.TryGetProperty("moh", out var moh) && moh.ValueKind == JsonValueKind.Object
            ? (ReadInt(moh, "num_shared_heads", file) ?? 0, ReadInt(moh, "num_routed_active_heads", file) ?? 0)
            : null;

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
