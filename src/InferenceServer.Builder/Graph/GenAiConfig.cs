// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using System.Text.Json.Nodes;
using InferenceServer.Builder.Checkpoint;

namespace InferenceServer.Builder.Graph;

/// <summary>
/// Writes <c>genai_config.json</c> in the layout of ONNX Runtime GenAI (<c>model.decoder</c> with its input and output
/// names, head counts and sizes), plus an <c>inference_server</c> section with what the builder knows beyond it:
/// the fused attention op and the KV cache layout and bytes per token.
/// </summary>
internal static class GenAiConfig
{
    /// <summary>Indented, camel-free (names are written as given).</summary>
    public static JsonSerializerOptions SerializerOptions { get; } = new() { WriteIndented = true };

    /// <summary>The file's text for <paramref name="config"/> as built into <paramref name="result"/>.</summary>
    public static string Write(DecoderConfig config, BuildResult result)
    {
        var eos = new JsonArray();
        foreach (var id in config.EosTokenIds)
        {
            eos.Add(id);
        }

        var kvCache = new JsonArray();
        var kvLayers = DecoderGraphBuilder.KvLayers(config);
        for (var i = 0; i < kvLayers.Count; i++)
        {
            var (keyHeads, keyWidth, valueHeads, valueWidth) = DecoderGraphBuilder.KvShape(config, kvLayers[i]);
            kvCache.Add(new JsonObject
            {
                ["index"] = i,
                ["layer"] = kvLayers[i],
                ["key"] = new JsonArray(keyHeads, keyWidth),
                ["value"] = new JsonArray(valueHeads, valueWidth),
            });
        }

        var paged = result.Graph == ModelBuilder.PagedGraph;
        var inputs = paged
            ? new JsonObject
            {
                ["input_ids"] = "input_ids",
                ["cumulative_sequence_length"] = "cumulative_sequence_length",
                ["past_seqlens"] = "past_seqlens",
                ["block_table"] = "block_table",
                ["logits_indices"] = "logits_indices",
                ["past_key_names"] = "key_cache.%d",
                ["past_value_names"] = "value_cache.%d",
            }
            : result.Graph == ModelBuilder.GenAiGraph
            ? new JsonObject
            {
                ["input_ids"] = "input_ids",
                ["attention_mask"] = "attention_mask",
                ["past_key_names"] = "past_key_values.%d.key",
                ["past_value_names"] = "past_key_values.%d.value",
            }
            : new JsonObject
            {
                ["input_ids"] = "input_ids",
                ["attention_mask"] = "attention_mask",
                ["position_ids"] = "position_ids",
                ["past_key_names"] = "past_key_values.%d.key",
                ["past_value_names"] = "past_key_values.%d.value",
            };
        var outputs = paged
            ? new JsonObject
            {
                ["logits"] = "logits",
                ["next_tokens"] = "next_tokens",
                ["present_key_names"] = "key_cache_out.%d",
                ["present_value_names"] = "value_cache_out.%d",
            }
            : new JsonObject
            {
                ["logits"] = "logits",
                ["present_key_names"] = "present.%d.key",
                ["present_value_names"] = "present.%d.value",
            };
        var root = new JsonObject
        {
            ["model"] = new JsonObject
            {
                ["type"] = config.ModelType,
                ["context_length"] = config.MaxPositionEmbeddings,
                ["vocab_size"] = config.VocabSize,
                ["bos_token_id"] = config.BosTokenId,
                ["eos_token_id"] = eos,
                ["pad_token_id"] = config.PadTokenId,
                ["decoder"] = new JsonObject
                {
                    ["filename"] = ModelBuilder.GraphFileName,
                    ["head_size"] = config.HeadDim,
                    ["hidden_size"] = config.HiddenSize,
                    ["num_attention_heads"] = config.HeadCount,
                    ["num_key_value_heads"] = config.Mla is null ? config.KvHeadCount : 1,
                    ["num_hidden_layers"] = kvLayers.Count,
                    ["inputs"] = inputs,
                    ["outputs"] = outputs,
                },
            },
            ["inference_server"] = new JsonObject
            {
                ["builder_version"] = 1,
                ["graph"] = result.Graph,
                ["dtype"] = result.DType,
                ["device"] = result.Device,
                ["external_data"] = ModelBuilder.DataFileName,
                ["attention_op"] = result.AttentionOp,
                ["kv_layout"] = paged
                    ? "[num_blocks, block_size, kv_heads, head_dim] per KV index, key and value; addressed through block_table, updated in place"
                    : result.Graph == ModelBuilder.GenAiGraph
                    ? "[batch, kv_heads, time, head_dim] per KV index, key and value; each row contiguous from 0 (GroupQueryAttention, seqlens_k from attention_mask)"
                    : config.Mla is null
                    ? "[batch, heads, time, width] per KV index, key and value; past right-padded, masked by attention_mask"
                    : "MLA: key = normalized latent [batch, 1, time, kv_lora_rank], value = shared rope key [batch, 1, time, qk_rope_head_dim]",
                ["kv_cache"] = kvCache,
                ["kv_bytes_per_token"] = result.KvBytesPerToken,
                ["parameter_count"] = result.ParameterCount,
                ["rope_type"] = config.Rope.Type,
                ["decoder_layers"] = config.LayerCount,
            },
        };
        if (result.Split is { } split)
        {
            var segments = new JsonArray();
            for (var s = 0; s <= split.Count; s++)
            {
                segments.Add(ModelBuilder.SegmentFileName(s));
            }

            var attention = new JsonArray();
            foreach (var call in split)
            {
                attention.Add(new JsonObject
                {
                    ["layer"] = call.Layer,
                    ["query_heads"] = call.QueryHeads,
                    ["kv_heads"] = call.KvHeads,
                    ["key_width"] = call.KeyWidth,
                    ["value_width"] = call.ValueWidth,
                    ["scale"] = call.Scale,
                    ["kind"] = call.Kind,
                });
            }

            root["inference_server"]!["split"] = new JsonObject
            {
                ["graph"] = ModelBuilder.SplitGraph,
                ["dtype"] = result.DType,
                ["segments"] = segments,
                ["rotary_half_width"] = config.RotaryDim / 2,
                ["attention"] = attention,
            };
        }

        return root.ToJsonString(SerializerOptions);
    }
}
