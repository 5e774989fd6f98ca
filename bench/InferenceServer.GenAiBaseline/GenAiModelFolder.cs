// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;
using System.Text.Json.Nodes;

namespace InferenceServer.GenAiBaseline;

/// <summary>
/// Assembles an onnxruntime-genai model folder for a Hugging Face style model folder with an Optimum-style
/// <c>model.onnx</c>: the graph and tokenizer files are linked (never copied), and <c>genai_config.json</c> is written
/// from the model's <c>config.json</c>.
/// </summary>
internal static class GenAiModelFolder
{
    private static readonly string[] LinkedFiles = ["model.onnx", "tokenizer.json", "tokenizer_config.json"];

    /// <summary>Fills <paramref name="workFolder"/> from <paramref name="modelFolder"/> and returns it.</summary>
    public static string Prepare(string modelFolder, string workFolder)
    {
        Directory.CreateDirectory(workFolder);
        foreach (var name in LinkedFiles)
        {
            var source = Path.GetFullPath(Path.Combine(modelFolder, name));
            var target = Path.Combine(workFolder, name);
            if (File.Exists(target) || Directory.Exists(target) || new FileInfo(target).LinkTarget is not null)
            {
                File.Delete(target);
            }

            if (File.Exists(source))
            {
                File.CreateSymbolicLink(target, source);
            }
        }

        var hf = JsonNode.Parse(File.ReadAllText(Path.Combine(modelFolder, "config.json")))!.AsObject();
        File.WriteAllText(Path.Combine(workFolder, "genai_config.json"), Build(hf).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return workFolder;
    }

    /// <summary>The <c>genai_config.json</c> (0.18 schema) for a decoder-only graph described by <paramref name="hf"/>.</summary>
    private static JsonObject Build(JsonObject hf)
    {
        var heads = hf["num_attention_heads"]!.GetValue<int>();
        var hidden = hf["hidden_size"]!.GetValue<int>();
        var headSize = hf["head_dim"]?.GetValue<int>() ?? (hidden / heads);
        var context = hf["max_position_embeddings"]!.GetValue<int>();
        return new JsonObject
        {
            ["model"] = new JsonObject
            {
                ["type"] = hf["model_type"]!.GetValue<string>(),
                ["bos_token_id"] = hf["bos_token_id"]!.GetValue<int>(),
                ["eos_token_id"] = hf["eos_token_id"]!.GetValue<int>(),
                ["pad_token_id"] = hf["pad_token_id"]?.GetValue<int>() ?? hf["eos_token_id"]!.GetValue<int>(),
                ["context_length"] = context,
                ["vocab_size"] = hf["vocab_size"]!.GetValue<int>(),
                ["decoder"] = new JsonObject
                {
                    ["session_options"] = new JsonObject { ["log_id"] = "onnxruntime-genai", ["provider_options"] = new JsonArray() },
                    ["filename"] = "model.onnx",
                    ["head_size"] = headSize,
                    ["hidden_size"] = hidden,
                    ["num_attention_heads"] = heads,
                    ["num_key_value_heads"] = hf["num_key_value_heads"]?.GetValue<int>() ?? heads,
                    ["num_hidden_layers"] = hf["num_hidden_layers"]!.GetValue<int>(),
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
            ["search"] = new JsonObject
            {
                ["do_sample"] = false,
                ["num_beams"] = 1,
                ["num_return_sequences"] = 1,
                ["max_length"] = context,
                ["min_length"] = 0,
                ["top_k"] = 1,
                ["top_p"] = 1.0,
                ["temperature"] = 1.0,
                ["repetition_penalty"] = 1.0,
                ["length_penalty"] = 1.0,
                ["no_repeat_ngram_size"] = 0,
                ["diversity_penalty"] = 0.0,
                ["early_stopping"] = true,
                // The graph concatenates past and new KV (Optimum style), so past and present cannot share one buffer.
                ["past_present_share_buffer"] = false,
            },
        };
    }
}
