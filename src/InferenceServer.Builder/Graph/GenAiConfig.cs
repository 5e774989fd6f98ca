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
                    ["num_key_value_heads"] = config.KvHeadCount,
                    ["num_hidden_layers"] = config.LayerCount,
                    ["inputs"] = new JsonObject
                    {
                        ["input_ids"] = "input_ids",
                        ["attention_mask"] = "attention_mask",
                        ["position_ids"] = "position_ids",
                        ["past_key_names"] = "past_key_values.%d.key",
                        ["past_value_names"] = "past_key_values.%d.value",
                    },
                    ["outputs"] = new JsonObject
                    {
                        ["logits"] = "logits",
                        ["present_key_names"] = "present.%d.key",
                        ["present_value_names"] = "present.%d.value",
                    },
                },
            },
            ["inference_server"] = new JsonObject
            {
                ["builder_version"] = 1,
                ["dtype"] = "fp32",
                ["device"] = "cpu",
                ["external_data"] = ModelBuilder.DataFileName,
                ["attention_op"] = result.AttentionOp,
                ["kv_layout"] = "[batch, kv_heads, time, head_dim] per layer, key and value; past right-padded, masked by attention_mask",
                ["kv_bytes_per_token"] = result.KvBytesPerToken,
                ["parameter_count"] = result.ParameterCount,
                ["rope_type"] = config.Rope.Type,
            },
        };
        return root.ToJsonString(SerializerOptions);
    }
}
