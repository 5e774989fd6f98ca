// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using InferenceServer.Builder.Safetensors;
using InferenceServer.Builder.Tests.Safetensors;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// Variants the fixtures lack, made from llama-gqa's weights: the served built graph, prefill then decoding with the
/// KV cache, matches the independent <see cref="ReferenceDecoder"/> at every step.
/// </summary>
public sealed class VariantTests
{
    private const int BlockSize = 16;

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    [InlineData("deepseek-v3-mla")]
    public void ReferenceDecoder_MatchesTransformers(string fixture) => AssertReferenceDecoderMatchesTransformers(fixture);

    /// <summary>The oracle is itself checked against transformers before it judges anything: fixture <paramref name="fixture"/>'s first two cases.</summary>
    internal static void AssertReferenceDecoderMatchesTransformers(string fixture)
    {
        var reference = new ReferenceDecoder(BuiltModels.Fixture(fixture));
        foreach (var (prompt, _, expected) in BuiltModels.References(fixture).Take(2))
        {
            var actual = reference.LastLogits(prompt);
            for (var i = 0; i < expected.Length; i++)
            {
                Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-4, $"logit {i}: {actual[i]} vs {expected[i]}");
            }
        }
    }

    [Theory]
    [InlineData("qwen3")]
    [InlineData("tied")]
    [InlineData("llama3-partial")]
    [InlineData("yarn")]
    [InlineData("linear-rope-scaling")]
    [InlineData("phi3")]
    [InlineData("mla-q-proj")]
    [InlineData("mla-no-interleave")]
    [InlineData("mla-yarn")]
    [InlineData("mla-moe")]
    [InlineData("mla-moe-unnormalized")]
    [InlineData("mla-dense-bias")]
    [InlineData("mla-transmla")]
    [InlineData("mla-transmla-lora")]
    public void Variant_ServedBuiltGraph_MatchesReferenceEveryStep(string variant)
    {
        var checkpoint = MakeVariant(variant);
        var output = BuiltModels.TempDirectory("variant-out-" + variant);
        ModelBuilder.Build(new BuildOptions { CheckpointDirectory = checkpoint, OutputDirectory = output });
        var reference = new ReferenceDecoder(checkpoint);
        using var runner = new DenseKvRunner(OnnxDecoderModel.Open(ModelPackage.Load(output)), 64, BlockSize);
        var vocab = runner.Spec.VocabularySize;
        var prompts = BuiltModels.References("llama-gqa").Select(c => c.Prompt).Take(3).ToArray();
        var sequences = prompts.Select(p => p.ToList()).ToArray();
        var tables = prompts.Select((p, r) => Enumerable.Range(r * 4, 4).ToArray()).ToArray();
        var batch = new ForwardBatch();
        var logits = new float[prompts.Length * vocab];
        for (var step = 0; step < 4; step++)
        {
            batch.Clear();
            for (var r = 0; r < prompts.Length; r++)
            {
                if (step == 0)
                {
                    batch.AddRow(prompts[r], 0, tables[r], wantLogits: true, sequenceId: r);
                }
                else
                {
                    batch.AddRow([sequences[r][^1]], sequences[r].Count - 1, tables[r], wantLogits: true, sequenceId: r);
                }
            }

            runner.Forward(batch, logits);
            for (var r = 0; r < prompts.Length; r++)
            {
                var expected = reference.LastLogits(sequences[r]);
                var row = logits.AsSpan(r * vocab, vocab);
                var best = 0;
                for (var i = 0; i < vocab; i++)
                {
                    Assert.True(Math.Abs(expected[i] - row[i]) < 1e-4, $"{variant} step {step} row {r} logit {i}: {row[i]} vs {expected[i]}");
                    best = row[i] > row[best] ? i : best;
                }

                sequences[r].Add(best);
            }
        }
    }

    /// <summary>
    /// A checkpoint folder: llama-gqa's (or for mla-*, deepseek-v3-mla's) weights and config, changed as
    /// <paramref name="variant"/> says, written to scratch folder <paramref name="folderName"/> (default <c>variant-{variant}</c>;
    /// test classes that run in parallel pass their own).
    /// </summary>
    internal static string MakeVariant(string variant, string? folderName = null)
    {
        var fixture = BuiltModels.Fixture(variant.StartsWith("mla-", StringComparison.Ordinal) ? "deepseek-v3-mla" : "llama-gqa");
        var folder = BuiltModels.TempDirectory(folderName ?? "variant-" + variant);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(fixture, "config.json")))!.AsObject();
        var tensors = new List<(string, string, long[], byte[])>();
        using (var file = SafetensorsFile.Open(Path.Combine(fixture, "model.safetensors")))
        {
            foreach (var info in file.Tensors.Values.OrderBy(t => t.Name, StringComparer.Ordinal))
            {
                if (variant == "tied" && info.Name == "lm_head.weight")
                {
                    continue;
                }

                if (variant.StartsWith("mla-moe", StringComparison.Ordinal) && info.Name.Contains(".mlp.", StringComparison.Ordinal) && !info.Name.StartsWith("model.layers.0.", StringComparison.Ordinal))
                {
                    continue;
                }

                if (variant is "mla-q-proj" or "mla-dense-bias" or "mla-transmla" && info.Name.Contains("self_attn.q_", StringComparison.Ordinal))
                {
                    continue;
                }

                if (variant.StartsWith("mla-transmla", StringComparison.Ordinal) && info.Name.Contains("_layernorm.weight", StringComparison.Ordinal) && info.Name.Contains("self_attn.", StringComparison.Ordinal))
                {
                    continue;
                }

                if (variant == "phi3" && (info.Name.Contains("_proj.weight", StringComparison.Ordinal) && !info.Name.Contains("o_proj", StringComparison.Ordinal) && !info.Name.Contains("down_proj", StringComparison.Ordinal)))
                {
                    continue;
                }

                tensors.Add((info.Name, "F32", info.Shape, MemoryMarshal.AsBytes(file.ReadFloat32(info).AsSpan()).ToArray()));
            }
        }

        switch (variant)
        {
            case "qwen3":
                config["model_type"] = "qwen3";
                var random = new Random(8);
                for (var l = 0; l < 3; l++)
                {
                    foreach (var name in new[] { "q_norm", "k_norm" })
                    {
                        var weight = Enumerable.Range(0, 16).Select(_ => (float)(0.5 + random.NextDouble())).ToArray();
                        tensors.Add(($"model.layers.{l}.self_attn.{name}.weight", "F32", [16], MemoryMarshal.AsBytes(weight.AsSpan()).ToArray()));
                    }
                }

                break;
            case "tied":
                config["tie_word_embeddings"] = true;
                break;
            case "phi3":
                // Fused [q; k; v] and [gate; up] rows, as Phi-3 checkpoints store them.
                config["model_type"] = "phi3";
                using (var file = SafetensorsFile.Open(Path.Combine(fixture, "model.safetensors")))
                {
                    for (var l = 0; l < 3; l++)
                    {
                        var p = $"model.layers.{l}.";
                        float[] Read(string name) => file.ReadFloat32(file.Tensors[p + name]);
                        float[] qkv = [.. Read("self_attn.q_proj.weight"), .. Read("self_attn.k_proj.weight"), .. Read("self_attn.v_proj.weight")];
                        float[] gateUp = [.. Read("mlp.gate_proj.weight"), .. Read("mlp.up_proj.weight")];
                        tensors.Add((p + "self_attn.qkv_proj.weight", "F32", [qkv.Length / 64, 64], MemoryMarshal.AsBytes(qkv.AsSpan()).ToArray()));
                        tensors.Add((p + "mlp.gate_up_proj.weight", "F32", [gateUp.Length / 64, 64], MemoryMarshal.AsBytes(gateUp.AsSpan()).ToArray()));
                    }
                }

                break;
            case "llama3-partial":
                config["rope_parameters"] = new JsonObject
                {
                    ["rope_type"] = "llama3", ["rope_theta"] = 10000.0, ["factor"] = 8.0, ["low_freq_factor"] = 1.0,
                    ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 64, ["partial_rotary_factor"] = 0.5,
                };
                break;
            case "yarn":
                config["rope_parameters"] = new JsonObject { ["rope_type"] = "yarn", ["rope_theta"] = 10000.0, ["factor"] = 4.0, ["original_max_position_embeddings"] = 16 };
                break;
            case "mla-short-rope-table":
                // RoPE tables of 36 rows: every fixture prompt and its decode fits, the four prompts packed in one
                // step (40 tokens) do not.
                config["max_position_embeddings"] = 36;
                break;
            case "mla-q-proj":
                // No query LoRA (DeepSeek-V2-Lite style): a plain q_proj [heads x qk_head_dim, hidden].
                config["q_lora_rank"] = null;
                var rng = new Random(3);
                var q = Enumerable.Range(0, 4 * 24 * 64).Select(_ => (float)((rng.NextDouble() - 0.5) * 0.3)).ToArray();
                for (var l = 0; l < 3; l++)
                {
                    tensors.Add(($"model.layers.{l}.self_attn.q_proj.weight", "F32", [4 * 24, 64], MemoryMarshal.AsBytes(q.AsSpan()).ToArray()));
                }

                break;
            case "mla-dense-bias":
            case "mla-transmla":
            case "mla-transmla-lora":
                // DeepSeek-V3 with attention_bias and no query LoRA: biases on kv_a_proj_with_mqa and o_proj (q_proj has
                // none), as transformers' DeepseekV3Attention. TransMLA's llama_mla (a converted GQA model): no latent
                // norms, biases on q_proj (or q_b_proj), kv_a_proj_with_mqa and kv_b_proj, query_pre_attn_scalar, halves RoPE.
                var transMla = variant != "mla-dense-bias";
                var lora = variant == "mla-transmla-lora";
                config["attention_bias"] = true;
                if (!lora)
                {
                    config["q_lora_rank"] = null;
                }

                if (transMla)
                {
                    config["model_type"] = "llama_mla";
                    config["architectures"] = new JsonArray("LlamaMLAForCausalLM");
                    config["query_pre_attn_scalar"] = 20;
                    config["rope_interleave"] = false;
                    config["first_k_dense_replace"] = 3;
                }

                var biasRandom = new Random(11);
                void Random(string name, params long[] shape) => AddRandom(tensors, biasRandom, 0.3, name, shape);

                for (var l = 0; l < 3; l++)
                {
                    var p = $"model.layers.{l}.self_attn.";
                    if (!lora)
                    {
                        Random(p + "q_proj.weight", 4 * 24, 64);
                    }

                    Random(p + "kv_a_proj_with_mqa.bias", 32 + 8);
                    if (transMla)
                    {
                        Random(p + (lora ? "q_b_proj.bias" : "q_proj.bias"), 4 * 24);
                        Random(p + "kv_b_proj.bias", 4 * (16 + 16));
                    }
                    else
                    {
                        Random(p + "o_proj.bias", 64);
                    }
                }

                break;
            case "mla-moe":
            case "mla-moe-unnormalized":
                // Layers 1 and 2 become MoE: 8 experts in 4 groups, 2 groups kept, 2 experts per token, 1 shared expert
                // (unnormalized: the chosen sigmoid scores as they are, norm_topk_prob false).
                config["first_k_dense_replace"] = 1;
                config["norm_topk_prob"] = variant == "mla-moe";
                config["n_routed_experts"] = 8;
                config["n_group"] = 4;
                config["topk_group"] = 2;
                config["num_experts_per_tok"] = 2;
                config["n_shared_experts"] = 1;
                config["moe_intermediate_size"] = 32;
                var moeRandom = new Random(5);
                void Add(string name, params long[] shape) => AddRandom(tensors, moeRandom, 0.4, name, shape);

                for (var l = 1; l < 3; l++)
                {
                    var p = $"model.layers.{l}.mlp.";
                    Add(p + "gate.weight", 8, 64);
                    Add(p + "gate.e_score_correction_bias", 8);
                    for (var e = 0; e < 8; e++)
                    {
                        Add($"{p}experts.{e}.gate_proj.weight", 32, 64);
                        Add($"{p}experts.{e}.up_proj.weight", 32, 64);
                        Add($"{p}experts.{e}.down_proj.weight", 64, 32);
                    }

                    Add(p + "shared_experts.gate_proj.weight", 32, 64);
                    Add(p + "shared_experts.up_proj.weight", 32, 64);
                    Add(p + "shared_experts.down_proj.weight", 64, 32);
                }

                break;
            case "mla-no-interleave":
                config["rope_interleave"] = false;
                break;
            case "mla-yarn":
                config["rope_parameters"] = new JsonObject
                {
                    ["rope_type"] = "yarn", ["rope_theta"] = 10000.0, ["factor"] = 4.0, ["original_max_position_embeddings"] = 16,
                    ["mscale"] = 1.0, ["mscale_all_dim"] = 1.0, ["beta_fast"] = 32, ["beta_slow"] = 1,
                };
                break;
            default:
                config.Remove("rope_parameters");
                config["rope_theta"] = 5000.0;
                config["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 2.0 };
                break;
        }

        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        SafetensorsWriter.Write(Path.Combine(folder, "model.safetensors"), tensors);
        return folder;
    }

    /// <summary>Appends an F32 tensor of uniform values in (-scale / 2, scale / 2) drawn from <paramref name="random"/>.</summary>
    private static void AddRandom(List<(string, string, long[], byte[])> tensors, Random random, double scale, string name, long[] shape)
    {
        var values = Enumerable.Range(0, (int)shape.Aggregate(1L, (a, b) => a * b)).Select(_ => (float)((random.NextDouble() - 0.5) * scale)).ToArray();
        tensors.Add((name, "F32", shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray()));
    }
}
