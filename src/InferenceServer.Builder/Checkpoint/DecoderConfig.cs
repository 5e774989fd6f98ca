// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;

namespace InferenceServer.Builder.Checkpoint;

/// <summary>
/// The one parse of a checkpoint's <c>config.json</c>, shared by the builder and the runtime: architecture, sizes,
/// normalization, RoPE, per-layer shapes, MLA, MoE and MoH. <see cref="Parse(string, string)"/> (the builder's) rejects what the builder
/// cannot build with a message naming the setting; <see cref="ParseForServing"/> (the runtime's, behind
/// <c>InferenceServer.Onnx.Packaging.ModelConfig</c>) reads any family's config, leaving what it does not say at 0.
/// </summary>
public sealed record DecoderConfig
{
    /// <summary>
    /// The Hugging Face <c>model_type</c>: llama, mistral, qwen2, qwen3, phi3, deepseek_v3, llama_mla (TransMLA's
    /// GQA-to-MLA conversion of a Llama, Qwen2 or Mistral model: DeepSeek-V3-style attention over the dense MLP), or the
    /// softmax-routed mixtures of experts qwen2_moe, qwen3_moe and mixtral.
    /// Serving (<see cref="ParseForServing"/>): any, <c>unknown</c> when absent.
    /// </summary>
    public required string ModelType { get; init; }

    /// <summary>Width of the residual stream.</summary>
    public required int HiddenSize { get; init; }

    /// <summary>Number of decoder layers.</summary>
    public required int LayerCount { get; init; }

    /// <summary>Query heads per layer.</summary>
    public required int HeadCount { get; init; }

    /// <summary>Key/value heads per layer.</summary>
    public required int KvHeadCount { get; init; }

    /// <summary>Width of one head.</summary>
    public required int HeadDim { get; init; }

    /// <summary>Width of the MLP's inner layer.</summary>
    public required int IntermediateSize { get; init; }

    /// <summary>Vocabulary size (rows of the embedding, columns of the logits).</summary>
    public required int VocabSize { get; init; }

    /// <summary>Per-layer shapes (one per layer; from <c>block_configs</c> when present, else uniform).</summary>
    public required IReadOnlyList<LayerConfig> Layers { get; init; }

    /// <summary>Mixture-of-Head routing (<c>moh</c>), or null.</summary>
    public MohConfig? Moh { get; init; }

    /// <summary>DeepSeek-V3 Multi-head Latent Attention sizes, or null for multi-head / grouped-query attention.</summary>
    public MlaConfig? Mla { get; init; }

    /// <summary>Mixture-of-experts MLP settings (DeepSeek-V3's, or Qwen-MoE's and Mixtral's softmax top-k), or null when every MLP is dense.</summary>
    public MoeConfig? Moe { get; init; }

    /// <summary>Width of the rotating part of each head: the rope head dim for MLA, else head_dim x partial_rotary_factor (even).</summary>
    public int RotaryDim => Mla is { } mla ? mla.QkRopeHeadDim : (int)(HeadDim * Rope.PartialRotaryFactor) / 2 * 2;

    /// <summary>RMSNorm epsilon.</summary>
    public required double RmsNormEps { get; init; }

    /// <summary>Rows of the RoPE cos/sin tables: the longest context the graph accepts.</summary>
    public required int MaxPositionEmbeddings { get; init; }

    /// <summary>Whether the LM head reuses the embedding matrix.</summary>
    public required bool TieWordEmbeddings { get; init; }

    /// <summary>RoPE settings.</summary>
    public required RopeScaling Rope { get; init; }

    /// <summary>The <c>bos_token_id</c>, or null.</summary>
    public int? BosTokenId { get; init; }

    /// <summary>The <c>eos_token_id</c> values (one or several), possibly empty.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>The <c>pad_token_id</c>, or null.</summary>
    public int? PadTokenId { get; init; }

    /// <summary>Parses <c>config.json</c> text for a build; <paramref name="source"/> names the file in errors.</summary>
    /// <exception cref="ModelBuildException">The config is malformed or names something the builder cannot build.</exception>
    public static DecoderConfig Parse(string json, string source) => Parse(json, source, strict: true);

    /// <summary>
    /// Parses <c>config.json</c> text for serving a model of any family: only <c>vocab_size</c> and
    /// <c>num_hidden_layers</c> are required, nothing is refused for being unbuildable, multimodal configs are read from
    /// their <c>text_config</c>, GPT-2's <c>n_embd</c> / <c>n_head</c> / <c>n_positions</c> stand in for the Llama names,
    /// and the context defaults to 2048; sizes the config does not give are 0.
    /// </summary>
    /// <exception cref="ModelBuildException">The config is not JSON, or a field it has is malformed.</exception>
    public static DecoderConfig ParseForServing(string json, string source) => Parse(json, source, strict: false);

    private static DecoderConfig Parse(string json, string source, bool strict)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException ex)
        {
            throw new ModelBuildException($"{source}: not valid JSON ({ex.Message})", ex);
        }

        using (document)
        {
            var outer = document.RootElement;
            if (outer.ValueKind != JsonValueKind.Object)
            {
                throw new ModelBuildException($"{source}: must hold a JSON object");
            }

            // Multimodal and some composite configs nest the language model under text_config (serving reads it from there).
            var root = !strict && outer.TryGetProperty("text_config", out var nested) && nested.ValueKind == JsonValueKind.Object ? nested : outer;
            var modelType = String(outer, "model_type", source) ?? (strict ? throw new ModelBuildException($"{source}: missing model_type") : "unknown");
            if (strict && modelType is not ("llama" or "mistral" or "qwen2" or "qwen3" or "phi3" or "deepseek_v3" or LlamaMla) && !IsSoftmaxMoe(modelType))
            {
                throw new ModelBuildException(
                    $"{source}: model_type '{modelType}' is not supported; the builder builds llama, mistral, qwen2, qwen3, phi3, deepseek_v3, llama_mla, qwen2_moe, qwen3_moe and mixtral");
            }

            if (root.TryGetProperty("mlp_bias", out var mlpBias) && mlpBias.ValueKind == JsonValueKind.True)
            {
                throw new ModelBuildException($"{source}: mlp_bias is not supported; the builder builds MLPs without biases");
            }

            var hidden = strict ? RequiredInt(root, "hidden_size", source) : Int(root, "hidden_size", source) ?? Int(root, "n_embd", source) ?? 0;
            var heads = strict ? RequiredInt(root, "num_attention_heads", source) : Int(root, "num_attention_heads", source) ?? Int(root, "n_head", source) ?? 0;
            var kvHeads = Int(root, "num_key_value_heads", source) ?? heads;
            var headDim = Int(root, "head_dim", source) ?? (heads > 0 ? hidden / heads : 0);
            if (strict && heads % kvHeads != 0)
            {
                throw new ModelBuildException($"{source}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");
            }

            var act = strict ? String(root, "hidden_act", source) ?? "silu" : "silu";
            if (act != "silu")
            {
                throw new ModelBuildException($"{source}: hidden_act '{act}' is not supported; the builder builds SiLU MLPs");
            }

            if (strict && root.TryGetProperty("use_sliding_window", out var sliding) && sliding.ValueKind == JsonValueKind.True)
            {
                throw new ModelBuildException($"{source}: use_sliding_window is not supported yet");
            }

            if (strict && modelType is "mistral" or "mixtral" or "phi3" && Int(root, "sliding_window", source) is { } window && window < (Int(root, "max_position_embeddings", source) ?? int.MaxValue))
            {
                throw new ModelBuildException($"{source}: sliding_window {window} is shorter than the context; sliding-window attention is not supported yet");
            }

            var maxPositions = Int(root, "max_position_embeddings", source) ?? (strict ? 4096 : Int(root, "n_positions", source) ?? 2048);
            var layerCount = RequiredInt(root, "num_hidden_layers", source);
            var intermediate = strict ? RequiredInt(root, "intermediate_size", source) : Int(root, "intermediate_size", source) ?? 0;
            var mla = modelType is "deepseek_v3" or LlamaMla || (!strict && root.TryGetProperty("kv_lora_rank", out _)) ? ParseMla(root, source, modelType, strict) : null;
            var layers = ParseLayers(root, source, layerCount, heads, mla is null ? kvHeads : 1, intermediate);
            var moh = ParseMoh(root, source, layers, strict);
            return new DecoderConfig
            {
                ModelType = modelType,
                HiddenSize = hidden,
                LayerCount = layerCount,
                Layers = layers,
                Moh = moh,
                Mla = mla,
                Moe = IsSoftmaxMoe(modelType) ? ParseSoftmaxMoe(root, source, modelType, layerCount, strict) : mla is null ? null : ParseMoe(root, source, layerCount, strict),
                HeadCount = heads,
                KvHeadCount = kvHeads,
                HeadDim = headDim,
                IntermediateSize = intermediate,
                VocabSize = RequiredInt(root, "vocab_size", source),
                RmsNormEps = Double(root, "rms_norm_eps", source) ?? 1e-6,
                MaxPositionEmbeddings = maxPositions,
                TieWordEmbeddings = root.TryGetProperty("tie_word_embeddings", out var tie) && tie.ValueKind == JsonValueKind.True,
                Rope = ParseRope(root, source, maxPositions, strict),
                BosTokenId = Int(outer, "bos_token_id", source),
                EosTokenIds = IntOrList(outer, "eos_token_id", source),
                PadTokenId = Int(outer, "pad_token_id", source),
            };
        }
    }

    private static MoeConfig? ParseMoe(JsonElement root, string source, int layerCount, bool strict)
    {
        var experts = Int(root, "n_routed_experts", source) ?? 0;
        var firstMoe = Int(root, "first_k_dense_replace", source) ?? 0;
        if (experts <= 0 || firstMoe >= layerCount)
        {
            return null;
        }

        if (strict && String(root, "topk_method", source) is { } method && method != "noaux_tc")
        {
            throw new ModelBuildException($"{source}: topk_method '{method}' is not supported; the builder builds DeepSeek-V3's noaux_tc routing");
        }

        if (strict && String(root, "scoring_func", source) is { } scoring && scoring != "sigmoid")
        {
            throw new ModelBuildException($"{source}: scoring_func '{scoring}' is not supported; the builder builds sigmoid routing");
        }

        var moe = new MoeConfig(
            firstMoe,
            experts,
            RequiredInt(root, "num_experts_per_tok", source),
            Int(root, "n_group", source) ?? 1,
            Int(root, "topk_group", source) ?? 1,
            !root.TryGetProperty("norm_topk_prob", out var norm) || norm.ValueKind != JsonValueKind.False,
            Double(root, "routed_scaling_factor", source) ?? 1.0,
            RequiredInt(root, "moe_intermediate_size", source),
            Int(root, "n_shared_experts", source) ?? 0);
        if (strict && (moe.Groups <= 0 || experts % moe.Groups != 0 || moe.TopKGroups < 1 || moe.TopKGroups > moe.Groups
            || moe.ExpertsPerToken < 1 || moe.ExpertsPerToken > moe.TopKGroups * (experts / moe.Groups) || experts / moe.Groups < 2))
        {
            throw new ModelBuildException(
                $"{source}: n_routed_experts {experts}, n_group {moe.Groups}, topk_group {moe.TopKGroups} and num_experts_per_tok {moe.ExpertsPerToken} are inconsistent");
        }

        return moe;
    }

    /// <summary>Whether <paramref name="modelType"/> is a softmax-routed mixture of experts: Qwen2-MoE, Qwen3-MoE or Mixtral.</summary>
    private static bool IsSoftmaxMoe(string modelType) => modelType is "qwen2_moe" or "qwen3_moe" or "mixtral";

    /// <summary>
    /// Qwen2-MoE's, Qwen3-MoE's and Mixtral's experts: softmax top-k routing (Mixtral always renormalizes; the Qwen
    /// models when <c>norm_topk_prob</c>, false when absent as in transformers' configs), MoE in every layer except
    /// <c>mlp_only_layers</c> and those <c>decoder_sparse_step</c> skips (layer i is MoE when (i + 1) % step == 0), and
    /// Qwen2-MoE's gated shared expert of <c>shared_expert_intermediate_size</c>.
    /// </summary>
    private static MoeConfig? ParseSoftmaxMoe(JsonElement root, string source, string modelType, int layerCount, bool strict)
    {
        var mixtral = modelType == "mixtral";
        // The Hub's Qwen configs say num_experts and Mixtral's num_local_experts; transformers 5 writes either name for either.
        var experts = Int(root, "num_experts", source) ?? Int(root, "num_local_experts", source) ?? 0;
        var widthName = mixtral ? "intermediate_size" : "moe_intermediate_size";
        if (experts <= 0 || (!strict && (Int(root, "num_experts_per_tok", source) is not > 0 || Int(root, widthName, source) is not > 0)))
        {
            // Serving reads what it is given: an MoE config without its sizes is not refused there (the graph says the rest).
            return null;
        }

        var perToken = RequiredInt(root, "num_experts_per_tok", source);
        var step = Int(root, "decoder_sparse_step", source) ?? 1;
        if (strict && (perToken > experts || step < 1))
        {
            throw new ModelBuildException($"{source}: num_experts_per_tok {perToken} with {experts} experts and decoder_sparse_step {step} are inconsistent");
        }

        var mlpOnly = IntOrList(root, "mlp_only_layers", source);
        var dense = Enumerable.Range(0, layerCount).Where(l => mlpOnly.Contains(l) || (l + 1) % Math.Max(1, step) != 0).ToArray();
        if (dense.Length == layerCount)
        {
            return null;
        }

        var shared = modelType == "qwen2_moe" ? Int(root, "shared_expert_intermediate_size", source) ?? 0 : 0;
        return new MoeConfig(
            0,
            experts,
            perToken,
            1,
            1,
            mixtral || (root.TryGetProperty("norm_topk_prob", out var norm) && norm.ValueKind == JsonValueKind.True),
            1.0,
            RequiredInt(root, widthName, source),
            shared > 0 ? 1 : 0)
        {
            Routing = MoeRouting.Softmax,
            DenseLayers = dense,
            SharedIntermediateSize = shared,
            GatedSharedExpert = shared > 0,
            Names = mixtral ? MoeWeightNames.Mixtral : MoeWeightNames.Qwen,
        };
    }

    /// <summary>TransMLA's model type for converted Llama / Qwen2 / Mistral checkpoints (its <c>LlamaMLAForCausalLM</c>).</summary>
    private const string LlamaMla = "llama_mla";

    private static MlaConfig ParseMla(JsonElement root, string source, string modelType, bool strict)
    {
        if (strict && root.TryGetProperty("block_configs", out var blocks) && blocks.ValueKind != JsonValueKind.Null)
        {
            throw new ModelBuildException($"{source}: block_configs with {modelType} is not supported");
        }

        if (strict && root.TryGetProperty("moh", out var moh) && moh.ValueKind != JsonValueKind.Null)
        {
            throw new ModelBuildException($"{source}: moh with {modelType} is not supported");
        }

        if (strict && Double(root, "attn_logit_softcapping", source) is { } softcap && softcap > 0)
        {
            throw new ModelBuildException($"{source}: attn_logit_softcapping is not supported");
        }

        var mla = new MlaConfig(
            Int(root, "q_lora_rank", source),
            RequiredInt(root, "kv_lora_rank", source),
            RequiredInt(root, "qk_nope_head_dim", source),
            RequiredInt(root, "qk_rope_head_dim", source),
            RequiredInt(root, "v_head_dim", source),
            !root.TryGetProperty("rope_interleave", out var interleave) || interleave.ValueKind != JsonValueKind.False)
        {
            // TransMLA's llama_mla attention has no latent norms (and its config class defaults query_pre_attn_scalar
            // to 128); its later converters say which with qk_latent_layernorm. transformers' DeepSeek-V3 ignores
            // query_pre_attn_scalar, but a converted checkpoint's own attention code uses it, so it wins when present.
            LatentNorms = root.TryGetProperty("qk_latent_layernorm", out var norms) && norms.ValueKind is JsonValueKind.True or JsonValueKind.False
                ? norms.ValueKind == JsonValueKind.True
                : modelType != LlamaMla,
            QueryPreAttnScalar = Double(root, "query_pre_attn_scalar", source) ?? (modelType == LlamaMla ? 128 : null),
        };
        if (mla.QkRopeHeadDim % 2 != 0)
        {
            throw new ModelBuildException($"{source}: qk_rope_head_dim {mla.QkRopeHeadDim} must be even");
        }

        if (mla.QueryPreAttnScalar is <= 0)
        {
            throw new ModelBuildException($"{source}: query_pre_attn_scalar must be positive");
        }

        return mla;
    }

    private static LayerConfig[] ParseLayers(JsonElement root, string source, int layerCount, int heads, int kvHeads, int intermediate)
    {
        var layers = new LayerConfig[layerCount];
        if (!root.TryGetProperty("block_configs", out var blocks) || blocks.ValueKind == JsonValueKind.Null)
        {
            Array.Fill(layers, new LayerConfig(true, heads, kvHeads, true, intermediate));
            return layers;
        }

        if (blocks.ValueKind != JsonValueKind.Array || blocks.GetArrayLength() != layerCount)
        {
            throw new ModelBuildException($"{source}: block_configs must be an array with one entry per layer ({layerCount})");
        }

        var i = 0;
        foreach (var block in blocks.EnumerateArray())
        {
            var where = $"{source}: block_configs[{i}]";
            if (!block.TryGetProperty("attention", out var attention) || !block.TryGetProperty("ffn", out var ffn))
            {
                throw new ModelBuildException($"{where} needs 'attention' and 'ffn'");
            }

            var hasAttention = !NoOp(attention);
            var layerHeads = hasAttention ? Int(attention, "num_attention_heads", where) ?? heads : 0;
            var layerKvHeads = hasAttention ? Int(attention, "num_key_value_heads", where) ?? kvHeads : 0;
            if (hasAttention && (layerHeads <= 0 || layerKvHeads <= 0 || layerHeads % layerKvHeads != 0))
            {
                throw new ModelBuildException($"{where}: num_attention_heads {layerHeads} must be a positive multiple of num_key_value_heads {layerKvHeads}");
            }

            var hasMlp = !NoOp(ffn);
            var width = hasMlp ? Int(ffn, "intermediate_size", where) ?? intermediate : 0;
            if (hasMlp && width <= 0)
            {
                throw new ModelBuildException($"{where}: intermediate_size must be positive");
            }

            layers[i++] = new LayerConfig(hasAttention, layerHeads, layerKvHeads, hasMlp, width);
        }

        return layers;
    }

    private static bool NoOp(JsonElement block) => block.TryGetProperty("no_op", out var noOp) && noOp.ValueKind == JsonValueKind.True;

    private static MohConfig? ParseMoh(JsonElement root, string source, LayerConfig[] layers, bool strict)
    {
        if (!root.TryGetProperty("moh", out var moh) || moh.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var router = String(moh, "router", source) ?? "query_norm";
        if (strict && router != "query_norm")
        {
            throw new ModelBuildException($"{source}: moh.router '{router}' is not supported; the builder builds the parameter-free query_norm router");
        }

        var shared = Int(moh, "num_shared_heads", source) ?? throw new ModelBuildException($"{source}: moh.num_shared_heads is required");
        var active = Int(moh, "num_routed_active_heads", source) ?? throw new ModelBuildException($"{source}: moh.num_routed_active_heads is required");
        foreach (var layer in layers)
        {
            var routed = layer.HeadCount - shared;
            if (strict && layer.HasAttention && (shared < 0 || routed < 2 || active < 1 || active > routed))
            {
                throw new ModelBuildException(
                    $"{source}: moh needs 0 <= num_shared_heads < num_attention_heads with at least 2 routed heads and 1 <= num_routed_active_heads <= routed heads (got {shared} shared, {active} active of {layer.HeadCount})");
            }
        }

        return new MohConfig(shared, active);
    }

    private static RopeScaling ParseRope(JsonElement root, string source, int maxPositions, bool strict)
    {
        // Newer configs: rope_parameters holds everything, theta included. Older: rope_theta + rope_scaling.
        JsonElement? parameters = null;
        if (root.TryGetProperty("rope_parameters", out var p) && p.ValueKind == JsonValueKind.Object)
        {
            parameters = p;
        }
        else if (root.TryGetProperty("rope_scaling", out var s) && s.ValueKind == JsonValueKind.Object)
        {
            parameters = s;
        }

        var theta = (parameters is { } pp ? Double(pp, "rope_theta", source) : null) ?? Double(root, "rope_theta", source) ?? 10000.0;
        var partial = (parameters is { } pq ? Double(pq, "partial_rotary_factor", source) : null) ?? Double(root, "partial_rotary_factor", source) ?? 1.0;
        if (parameters is not { } rope)
        {
            return new RopeScaling { Type = "default", Theta = theta, PartialRotaryFactor = partial };
        }

        var type = String(rope, "rope_type", source) ?? String(rope, "type", source) ?? "default";
        if (strict && type is not ("default" or "linear" or "llama3" or "yarn"))
        {
            throw new ModelBuildException($"{source}: rope_type '{type}' is not supported; the builder builds default, linear, llama3 and yarn");
        }

        var factor = Double(rope, "factor", source) ?? 1.0;
        if (strict && type != "default" && factor <= 0)
        {
            throw new ModelBuildException($"{source}: rope factor {factor} must be positive");
        }

        return new RopeScaling
        {
            Type = type,
            Theta = theta,
            Factor = factor,
            OriginalMaxPositionEmbeddings = Int(rope, "original_max_position_embeddings", source)
                ?? Int(root, "original_max_position_embeddings", source) ?? maxPositions,
            HighFreqFactor = Double(rope, "high_freq_factor", source) ?? 4.0,
            LowFreqFactor = Double(rope, "low_freq_factor", source) ?? 1.0,
            BetaFast = Double(rope, "beta_fast", source) ?? 32.0,
            BetaSlow = Double(rope, "beta_slow", source) ?? 1.0,
            AttentionFactor = Double(rope, "attention_factor", source),
            Mscale = Double(rope, "mscale", source),
            MscaleAllDim = Double(rope, "mscale_all_dim", source),
            Truncate = !rope.TryGetProperty("truncate", out var truncate) || truncate.ValueKind != JsonValueKind.False,
            PartialRotaryFactor = partial,
        };
    }

    private static int RequiredInt(JsonElement element, string name, string source) =>
        Int(element, name, source) is { } value && value > 0 ? value : throw new ModelBuildException($"{source}: missing or non-positive {name}");

    private static int? Int(JsonElement element, string name, string source)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var result)
            ? result
            : throw new ModelBuildException($"{source}: {name} must be an integer");
    }

    private static double? Double(JsonElement element, string name, string source)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number ? value.GetDouble() : throw new ModelBuildException($"{source}: {name} must be a number");
    }

    private static string? String(JsonElement element, string name, string source)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw new ModelBuildException($"{source}: {name} must be a string");
    }

    private static int[] IntOrList(JsonElement element, string name, string source)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        if (value.ValueKind == JsonValueKind.Array)
        {
            var list = new int[value.GetArrayLength()];
            var i = 0;
            foreach (var item in value.EnumerateArray())
            {
                list[i++] = item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out var id)
                    ? id
                    : throw new ModelBuildException($"{source}: {name} must hold integers");
            }

            return list;
        }

        return [Int(element, name, source)!.Value];
    }
}
