// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using InferenceServer.Builder.Checkpoint;
using InferenceServer.Builder.Graph;
using InferenceServer.Builder.Onnx.Proto;
using InferenceServer.Builder.Safetensors;
using Microsoft.ML.OnnxRuntime;
using DataType = InferenceServer.Builder.Onnx.Proto.TensorProto.Types.DataType;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// ADR 0008's paged MLA graph: the pools are the latent and the rope key (nothing more), written in place by
/// ScatterND and read by Gather over <c>block_table</c>; no PagedAttention; the GQA paged graph is unchanged. The same
/// builder with T = fp32 runs on ONNX Runtime's CPU provider (every op of the MLA form is a standard one), so its
/// greedy tokens are checked against transformers here, through packed mixed batches, chunked prefill and scattered blocks.
/// </summary>
public sealed class PagedMlaGraphTests
{
    private const int BlockSize = 16;
    private const int GreedySteps = 12;

    [Theory]
    [InlineData("fp16")]
    [InlineData("bf16")]
    public void Pools_AreTheLatentAndTheRopeKey_WrittenInPlaceAndGathered(string dtype)
    {
        var model = Load(BuiltModels.Get("deepseek-v3-mla", dtype, "cuda"));
        var t = (int)(dtype == "fp16" ? DataType.Float16 : DataType.Bfloat16);
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "PagedAttention");
        // ONNX Runtime's CUDA Einsum has no bf16 kernel, and its Where none in bf16: neither may meet T.
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "Einsum");
        Assert.All(model.Graph.Node.Where(n => n.OpType == "Where"), n => Assert.StartsWith("const_f32_", n.Input[2], StringComparison.Ordinal));
        for (var i = 0; i < 3; i++)
        {
            // Latent 32 and rope key 8 per token and layer: (kv_lora_rank + qk_rope_head_dim) exactly, one KV head.
            Assert.Equal($"key_cache.{i}:{t}:[num_blocks,block_size,1,32]", Describe(model.Graph.Input.Single(v => v.Name == $"key_cache.{i}")));
            Assert.Equal($"value_cache.{i}:{t}:[num_blocks,block_size,1,8]", Describe(model.Graph.Input.Single(v => v.Name == $"value_cache.{i}")));
            Assert.Equal($"key_cache_out.{i}:{t}:[num_blocks,block_size,1,32]", Describe(model.Graph.Output.Single(v => v.Name == $"key_cache_out.{i}")));
            Assert.Equal($"value_cache_out.{i}:{t}:[num_blocks,block_size,1,8]", Describe(model.Graph.Output.Single(v => v.Name == $"value_cache_out.{i}")));
            foreach (var (pool, output) in new[] { ($"key_cache.{i}", $"key_cache_out.{i}"), ($"value_cache.{i}", $"value_cache_out.{i}") })
            {
                // The write is the pool's only reader (besides the prologue's Shape of key_cache.0, which reads no data)
                // and produces the graph output itself (the runner aliases the two).
                var write = Assert.Single(model.Graph.Node, n => n.Input.Contains(pool) && n.OpType != "Shape");
                Assert.Equal("ScatterND", write.OpType);
                Assert.Equal([pool, "mla_slots"], write.Input.Take(2));
                Assert.Equal([output], write.Output);
                var gather = Assert.Single(model.Graph.Node, n => n.OpType == "Gather" && n.Input.Contains(output));
                Assert.Equal([output, "block_table"], gather.Input);
            }
        }

        Assert.Equal(3, model.Graph.Node.Count(n => n.OpType == "Softmax"));
        Assert.Equal(3, model.Graph.Node.Count(n => n.OpType == "MatMul" && n.Name.EndsWith("mla_weighted_latents", StringComparison.Ordinal)));

        // RoPE is one com.microsoft.RotaryEmbedding per rope part (the query's, all heads; the shared key's, one head)
        // over the T-typed tables at the tokens' positions, not the nine-kernel ONNX form.
        var rotary = model.Graph.Node.Where(n => n.OpType == "RotaryEmbedding").ToList();
        Assert.Equal(6, rotary.Count);
        Assert.All(rotary, n => Assert.Equal("com.microsoft", n.Domain));
        Assert.All(rotary, n => Assert.Equal(["mla_position_ids", "rope.cos_cache", "rope.sin_cache"], n.Input.Skip(1)));
        Assert.Equal([4L, 4L, 4L, 1L, 1L, 1L], rotary.Select(n => n.Attribute.Single(a => a.Name == "num_heads").I).Order().Reverse());
        Assert.DoesNotContain(model.Graph.Node, n => n.Name.EndsWith("_rope_first", StringComparison.Ordinal));
        // The softmax scale rides in the query's weights and the rope key goes to its pool as roped: no scaling Mul, no
        // [latent, rope key] Concat sliced apart again.
        Assert.DoesNotContain(model.Graph.Node, n => n.Name.EndsWith("mla_query_scaled", StringComparison.Ordinal) || n.Name.EndsWith("mla_key", StringComparison.Ordinal));
        Assert.All(model.Graph.Node.Where(n => n.Name.EndsWith("mla_write_rope", StringComparison.Ordinal)), n => Assert.EndsWith("_k_rotary_out", model.Graph.Node.Single(m => m.Output.Contains(n.Input[2])).Input[0], StringComparison.Ordinal));
        // Shapes are constants or made once in the prologue: a layer's one Concat is the query's [absorbed, rope] (an
        // eagerly run step dispatches every node), and no layer reads a shape of its own.
        Assert.Equal(["l0_mla_query_4d", "l1_mla_query_4d", "l2_mla_query_4d"], model.Graph.Node.Where(n => n.OpType == "Concat" && n.Name.StartsWith('l')).Select(n => n.Name).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "Shape" && n.Name.StartsWith('l'));
        var metadata = model.MetadataProps.ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal("paged-v1", metadata["inferenceserver.graph"]);
        Assert.Equal((3 * (32 + 8) * 2).ToString(CultureInfo.InvariantCulture), metadata["inference_server.kv_bytes_per_token"]);
    }

    [Theory]
    [InlineData("deepseek-v3-mla", "fp16")]
    [InlineData("deepseek-v3-dense-mla", "bf16")]
    [InlineData("mla-moe", "fp16")]
    [InlineData("llama-moh", "fp16")]
    [InlineData("qwen2-moe", "fp16")]
    public void Graph_NeedsNoHostDeviceCopy_UnderOnnxRuntimesCpuFallbackRule(string checkpoint, string dtype)
    {
        // ONNX Runtime captures a session as CUDA graphs only if partitioning inserted no copy node (ADR 0008). This replays
        // its CPU fallback (GetCpuPreferredNodes) on the built graph and lists the tensors that would cross. The GQA-family
        // graphs (MoH, MoE) are captured on the GPU (GpuTests), which checks the rule's model of ONNX Runtime.
        var folder = checkpoint.StartsWith("mla-", StringComparison.Ordinal) ? VariantTests.MakeVariant(checkpoint, "placement-" + checkpoint) : BuiltModels.Fixture(checkpoint);
        var output = BuiltModels.TempDirectory($"placement-{checkpoint}-{dtype}");
        ModelBuilder.Build(new BuildOptions { CheckpointDirectory = folder, OutputDirectory = output, DType = dtype, Device = "cuda" });
        Assert.Empty(CudaPlacement.Copies(Load(output).Graph));
    }

    [Fact]
    public void PlacementRule_FindsTheCopiesOfAMixedGraph()
    {
        // A host value (a Shape's) divided into a device tensor needs a copy; read as a Range bound it does not.
        var graph = new GraphProto();
        graph.Input.Add(new ValueInfoProto { Name = "x" });
        graph.Initializer.Add(new TensorProto { Name = "axes", DataType = (int)DataType.Int64, Dims = { 1 }, Int64Data = { 0 } });
        graph.Initializer.Add(new TensorProto { Name = "zero", DataType = (int)DataType.Int64, Int64Data = { 0 } });
        graph.Initializer.Add(new TensorProto { Name = "one", DataType = (int)DataType.Int64, Int64Data = { 1 } });
        graph.Node.Add(new NodeProto { OpType = "Shape", Input = { "x" }, Output = { "s" } });
        graph.Node.Add(new NodeProto { OpType = "Squeeze", Input = { "s", "axes" }, Output = { "n" } });
        graph.Node.Add(new NodeProto { OpType = "Range", Input = { "zero", "n", "one" }, Output = { "r" } });
        graph.Node.Add(new NodeProto { OpType = "Cast", Input = { "x" }, Output = { "xd" } });
        graph.Node.Add(new NodeProto { OpType = "Div", Input = { "xd", "n" }, Output = { "q" } });
        graph.Node.Add(new NodeProto { OpType = "Add", Input = { "q", "r" }, Output = { "y" } });
        Assert.Equal(["n -> Div"], CudaPlacement.Copies(graph));
    }

    [Theory]
    [InlineData("deepseek-v3-mla", "fp16")]
    [InlineData("mla-moe", "bf16")]
    public void LatentAttention_OnePagedAttentionALayerInItsLatentLayout_OnOnePool(string checkpoint, string dtype)
    {
        // build --mla-attention latent (ADR 0008): ONNX Runtime 1.31's PagedAttention reads the latent pool in place. The
        // fixtures' heads (32 + 8) are narrower than the kernel rotates (LatentShapes_ONNXRuntimeRefuses_AreRefusedAtBuild):
        // the structure is the same at any width.
        var folder = checkpoint.StartsWith("mla-", StringComparison.Ordinal) ? VariantTests.MakeVariant(checkpoint, "latent-" + checkpoint) : BuiltModels.Fixture(checkpoint);
        var output = BuiltModels.TempDirectory($"latent-{checkpoint}-{dtype}");
        ModelBuilder.Build(new BuildOptions { CheckpointDirectory = folder, OutputDirectory = output, DType = dtype, Device = "cuda", MlaAttention = "latent", AllowUnrunnableLatentShapes = true });
        var model = Load(output);
        var attention = model.Graph.Node.Where(n => n.OpType == "PagedAttention").ToList();
        Assert.Equal(3, attention.Count);
        foreach (var node in attention)
        {
            Assert.Equal("LATENT", node.Attribute.Single(a => a.Name == "kv_cache_layout").S.ToStringUtf8());
            Assert.Equal(32, node.Attribute.Single(a => a.Name == "v_head_size").I);
            Assert.Equal(32, node.Attribute.Single(a => a.Name == "rotary_offset").I);
            Assert.Equal(1, node.Attribute.Single(a => a.Name == "do_rotary").I);
            Assert.Equal(1, node.Attribute.Single(a => a.Name == "kv_num_heads").I);
            Assert.Equal(string.Empty, node.Input[2]);
            Assert.Equal(string.Empty, node.Input[4]);
            Assert.Equal(2, node.Output.Count);
            Assert.Equal(DecoderGraphBuilder.AttentionMetadataInput, node.Input[16]);
        }

        // One pool a layer, [blocks, block_size, 1, kv_lora_rank + rope]; nothing of the gather form.
        Assert.Equal(["key_cache.0", "key_cache.1", "key_cache.2"], model.Graph.Input.Where(i => i.Name.Contains("_cache", StringComparison.Ordinal)).Select(i => i.Name));
        Assert.All(model.Graph.Input.Where(i => i.Name.StartsWith("key_cache", StringComparison.Ordinal)), i => Assert.Equal([1, 40], i.Type.TensorType.Shape.Dim.Skip(2).Select(d => d.DimValue)));
        Assert.DoesNotContain(model.Graph.Output, o => o.Name.StartsWith("value_cache", StringComparison.Ordinal));
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType is "ScatterND" or "RotaryEmbedding" or "Softmax");
        Assert.Empty(CudaPlacement.Copies(model.Graph));

        // ONNX Runtime 1.31's schema and shape inference take the whole graph; on the CPU it stops at the CUDA-only kernel
        // (a bf16 graph stops earlier, at the first op the CPU provider has no bf16 kernel for).
        if (dtype != "fp16")
        {
            return;
        }

        using var options = new SessionOptions();
        var error = Assert.ThrowsAny<OnnxRuntimeException>(() => new InferenceSession(Path.Combine(output, "model.onnx"), options).Dispose());
        Assert.Contains("PagedAttention", error.Message, StringComparison.Ordinal);
        Assert.True(
            error.Message.Contains("InsertedPrecisionFreeCast", StringComparison.Ordinal) || error.Message.Contains("implementation", StringComparison.OrdinalIgnoreCase),
            error.Message);
    }

    [Theory]
    [InlineData(512, 64, null)]   // DeepSeek-V2/V3: 576
    [InlineData(256, 64, null)]   // the dense MLA 1B shape: 320
    [InlineData(32, 8, "is 40")]  // the fixtures
    [InlineData(40, 8, "qk_rope_head_dim is a multiple of 16")]
    [InlineData(504, 8, "qk_rope_head_dim is a multiple of 16")]
    public void LatentShapes_ONNXRuntimeRefuses_AreRefusedAtBuild(int rank, int rope, string? problem)
    {
        // ONNX Runtime 1.31's PagedAttention with do_rotary: head size % 16 == 0 and cos/sin width (rope / 2) % 8 == 0.
        var mla = new InferenceServer.Builder.Checkpoint.MlaConfig(null, rank, 16, rope, 16, RopeInterleave: false);
        var found = ModelBuilder.LatentShapeProblem(mla);
        if (problem is null)
        {
            Assert.Null(found);
        }
        else
        {
            Assert.Contains(problem, found, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void LatentAttention_OnTheFixtureShape_IsRefusedWithTheGatherFormNamed()
    {
        var error = Assert.Throws<ModelBuildException>(() => ModelBuilder.Build(new BuildOptions
        {
            CheckpointDirectory = BuiltModels.Fixture("deepseek-v3-mla"),
            OutputDirectory = BuiltModels.TempDirectory("latent-refused"),
            DType = "fp16",
            Device = "cuda",
            MlaAttention = "latent",
        }));
        Assert.Contains("kv_lora_rank + qk_rope_head_dim is 40", error.Message, StringComparison.Ordinal);
        Assert.Contains("--mla-attention gather", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("deepseek-v3-mla")]
    [InlineData("mla-moe")]
    public void MhaAttention_OneMultiHeadAttentionALayer_OverTheGatheredBlocks(string checkpoint)
    {
        // build --mla-attention mha (ADR 0008): the gather form's pools, gathers and query layout, then one
        // MultiHeadAttention a layer (one head; a row's heads are its query rows) instead of MatMuls, mask Add and Softmax.
        var folder = checkpoint.StartsWith("mla-", StringComparison.Ordinal) ? VariantTests.MakeVariant(checkpoint, "mha-" + checkpoint) : BuiltModels.Fixture(checkpoint);
        var output = BuiltModels.TempDirectory($"mha-built-{checkpoint}");
        ModelBuilder.Build(new BuildOptions { CheckpointDirectory = folder, OutputDirectory = output, DType = "fp16", Device = "cuda", MlaAttention = "mha" });
        var model = Load(output);
        var attention = model.Graph.Node.Where(n => n.OpType == "MultiHeadAttention").ToList();
        Assert.Equal(3, attention.Count);
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType is "Softmax" or "PagedAttention");
        for (var i = 0; i < 3; i++)
        {
            var node = attention[i];
            Assert.Equal("com.microsoft", node.Domain);
            Assert.Equal(1, node.Attribute.Single(a => a.Name == "num_heads").I);
            Assert.Equal(1f, node.Attribute.Single(a => a.Name == "scale").F);
            // Query: the padded places; key: [latent, rope key] of the gathered blocks; value: the latents; no mask but the bias.
            Assert.Equal([$"l{i}_mla_query_padded", $"l{i}_mla_row_keys", $"l{i}_mla_row_latents", string.Empty, string.Empty, "mla_mha_bias_4"], node.Input);
            var keys = model.Graph.Node.Single(n => n.Output.Contains($"l{i}_mla_row_keys"));
            Assert.Equal(("Concat", $"l{i}_mla_row_latents", $"l{i}_mla_row_rope_keys"), (keys.OpType, keys.Input[0], keys.Input[1]));
        }

        // The pools are the gather form's; the bias is made once a step (one head count here).
        Assert.Equal(6, model.Graph.Node.Count(n => n.OpType == "ScatterND"));
        Assert.Single(model.Graph.Node, n => n.OpType == "Expand" && n.Name.StartsWith("mla_mha_bias", StringComparison.Ordinal));
        Assert.Empty(CudaPlacement.Copies(model.Graph));
        Assert.Contains(model.MetadataProps, p => p.Value == ModelBuilder.PagedMlaMhaAttentionOp);
    }

    [Theory]
    [InlineData("deepseek-v3-mla", "bf16", "no bf16 CUDA kernel")]
    [InlineData("llama-gqa", "fp16", "of an MLA checkpoint")]
    public void MhaAttention_WhereItCannotRun_IsRefused(string checkpoint, string dtype, string message)
    {
        var error = Assert.Throws<ModelBuildException>(() => ModelBuilder.Build(new BuildOptions
        {
            CheckpointDirectory = BuiltModels.Fixture(checkpoint),
            OutputDirectory = BuiltModels.TempDirectory($"mha-refused-{checkpoint}-{dtype}"),
            DType = dtype,
            Device = "cuda",
            MlaAttention = "mha",
        }));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void GqaPagedGraph_HasNoneOfTheMlaForm()
    {
        var model = Load(BuiltModels.Get("llama-gqa", "fp16", "cuda"));
        Assert.Equal(3, model.Graph.Node.Count(n => n.OpType == "PagedAttention"));
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "ScatterND" || n.Name.Contains("mla_", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("fp16")]
    [InlineData("bf16")]
    public void Moe_RoutesInFp32_ThenRunsTheChosenExpertsByTheMoeOpInFp16_OrAllExpertsInBf16(string dtype)
    {
        var output = BuiltModels.TempDirectory("paged-mla-moe-" + dtype);
        ModelBuilder.Build(new BuildOptions { CheckpointDirectory = VariantTests.MakeVariant("mla-moe", "paged-mla-moe-checkpoint-" + dtype), OutputDirectory = output, DType = dtype, Device = "cuda" });
        var model = Load(output);
        foreach (var layer in new[] { 1, 2 })
        {
            var toFloat = model.Graph.Node.Single(n => n.Name == $"l{layer}_moe_router_logits_f32");
            Assert.Equal((long)DataType.Float, toFloat.Attribute.Single(a => a.Name == "to").I);
            var moe = model.Graph.Node.SingleOrDefault(n => n.OpType == "MoE" && n.Name == $"l{layer}_moe_experts");
            if (dtype == "fp16")
            {
                // Only the chosen experts: k = num_experts_per_tok, SiLU-gated through SwiGLU (alpha 1, beta 0), gate/up interleaved.
                Assert.NotNull(moe);
                Assert.Equal("com.microsoft", moe.Domain);
                var attributes = moe.Attribute.ToDictionary(a => a.Name);
                Assert.Equal(2, attributes["k"].I);
                Assert.Equal("swiglu", attributes["activation_type"].S.ToStringUtf8());
                Assert.Equal(1, attributes["swiglu_fusion"].I);
                Assert.Equal(1f, attributes["activation_alpha"].F);
                Assert.Equal(0f, attributes["activation_beta"].F);
                var fc1 = model.Graph.Initializer.Single(t => t.Name == moe.Input[2]);
                Assert.Equal([8L, 64, 64], fc1.Dims);
                Assert.DoesNotContain(model.Graph.Node, n => n.Name == $"l{layer}_moe_routing_t");
            }
            else
            {
                // ONNX Runtime's CUDA MoE kernel has no bf16: every expert densely, weights cast back to T.
                Assert.Null(moe);
                var toT = model.Graph.Node.Single(n => n.Name == $"l{layer}_moe_routing_t");
                Assert.Equal((long)DataType.Bfloat16, toT.Attribute.Single(a => a.Name == "to").I);
            }
        }

        Assert.DoesNotContain(model.Graph.Node, n => n.Name.StartsWith("l0_moe_", StringComparison.Ordinal));
    }

    public static TheoryData<string, bool> Checkpoints() => new()
    {
        { "deepseek-v3-mla", true },
        { "deepseek-v3-mla", false },
        { "mla-q-proj", true },
        { "mla-transmla", true },
        { "mla-moe", true },
        { "mla-moe-unnormalized", true },
        { "mla-short-rope-table", true },
    };

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public void Fp32OnCpu_MixedBatchesAndChunkedPrefill_MatchTheReferenceTokens(string checkpoint, bool attentionMetadata) =>
        AssertReferenceTokens(checkpoint, attentionMetadata, mha: false);

    public static TheoryData<string, bool> MhaCheckpoints() => new()
    {
        { "deepseek-v3-mla", true },
        { "deepseek-v3-mla", false },
        { "mla-transmla", true },
        { "mla-moe", true },
        { "mla-short-rope-table", true },
    };

    /// <summary>The MultiHeadAttention form (<c>--mla-attention mha</c>) on ONNX Runtime's CPU kernel, through the same steps.</summary>
    [Theory]
    [MemberData(nameof(MhaCheckpoints))]
    public void Fp32OnCpu_MhaForm_MixedBatchesAndChunkedPrefill_MatchTheReferenceTokens(string checkpoint, bool attentionMetadata) =>
        AssertReferenceTokens(checkpoint, attentionMetadata, mha: true);

    private static void AssertReferenceTokens(string checkpoint, bool attentionMetadata, bool mha)
    {
        // The fixture against transformers' greedy tokens; the variants against the reference decoder's.
        var folder = checkpoint.StartsWith("mla-", StringComparison.Ordinal) ? VariantTests.MakeVariant(checkpoint, "paged-cpu-" + checkpoint) : BuiltModels.Fixture(checkpoint);
        var cases = BuiltModels.References("deepseek-v3-mla");
        var steps = checkpoint.StartsWith("mla-", StringComparison.Ordinal) ? 4 : GreedySteps;
        int[][] expected;
        if (checkpoint.StartsWith("mla-", StringComparison.Ordinal))
        {
            var reference = new ReferenceDecoder(folder);
            expected = cases.Select(c => ReferenceGreedy(reference, c.Prompt, steps)).ToArray();
        }
        else
        {
            expected = cases.Select(c => c.Greedy).ToArray();
        }

        // Without attention_metadata the graph takes the rows' most new tokens from cumulative_sequence_length.
        using var stepper = new CpuPagedStepper(BuildFp32Paged(folder, checkpoint + (attentionMetadata ? string.Empty : "-no-metadata") + (mha ? "-mha" : string.Empty), attentionMetadata, mha), folder);

        // All prompts in one packed prefill, then decodes; blocks scattered (row r's blocks interleave with the others').
        var tables = cases.Select((c, r) => Enumerable.Range(0, 3).Select(b => (b * cases.Count) + r).ToArray()).ToArray();
        var together = stepper.Decode(cases.Select(c => c.Prompt).ToArray(), tables, steps, arrival: _ => 0, chunk: int.MaxValue);
        // Staggered arrivals (prefill beside decode) with prompts cut into chunks of 4 tokens over fresh blocks.
        var tables2 = cases.Select((c, r) => Enumerable.Range(12 + (3 * r), 3).ToArray()).ToArray();
        var staggered = stepper.Decode(cases.Select(c => c.Prompt).ToArray(), tables2, steps, arrival: r => r, chunk: 4);
        for (var r = 0; r < cases.Count; r++)
        {
            Assert.Equal(expected[r].Take(steps), together[r]);
            Assert.Equal(expected[r].Take(steps), staggered[r]);
        }
    }

    private static int[] ReferenceGreedy(ReferenceDecoder reference, int[] prompt, int steps)
    {
        var tokens = prompt.ToList();
        for (var s = 0; s < steps; s++)
        {
            var logits = reference.LastLogits(tokens);
            tokens.Add(Array.IndexOf(logits, logits.Max()));
        }

        return tokens.Skip(prompt.Length).ToArray();
    }

    /// <summary>The paged graph of <paramref name="checkpoint"/> with T = fp32 (what ModelBuilder does for fp16, in fp32).</summary>
    private static string BuildFp32Paged(string checkpoint, string name, bool attentionMetadata, bool mha = false)
    {
        var folder = BuiltModels.TempDirectory("paged-fp32-" + name);
        var config = DecoderConfig.Parse(File.ReadAllText(Path.Combine(checkpoint, "config.json")), "config.json");
        using var weights = SafetensorsCheckpoint.Open(checkpoint);
        using (var data = new ExternalDataWriter(Path.Combine(folder, "model.onnx.data")))
        {
            var writer = new OnnxGraphWriter(data, DataType.Float);
            new DecoderGraphBuilder(config, weights, writer) { AttentionMetadata = attentionMetadata, MlaMhaAttention = mha }.BuildPaged(CancellationToken.None);
            writer.Save(
                Path.Combine(folder, "model.onnx"),
                DecoderGraphBuilder.IrVersion,
                [(string.Empty, DecoderGraphBuilder.OnnxOpset), (DecoderGraphBuilder.PagedAttentionDomain, DecoderGraphBuilder.MicrosoftOpset)],
                new Dictionary<string, string>());
        }

        return Path.Combine(folder, "model.onnx");
    }

    private static string Describe(ValueInfoProto value) =>
        $"{value.Name}:{value.Type.TensorType.ElemType}:[{string.Join(",", value.Type.TensorType.Shape.Dim.Select(d => d.HasDimParam ? d.DimParam : d.DimValue.ToString(CultureInfo.InvariantCulture)))}]";

    private static ModelProto Load(string folder)
    {
        using var stream = File.OpenRead(Path.Combine(folder, "model.onnx"));
        return ModelProto.Parser.ParseFrom(stream);
    }

    /// <summary>
    /// Drives a paged graph on ONNX Runtime's CPU provider the way the CUDA runner does: packed rows, past lengths,
    /// block tables, logits rows; each step's <c>*_cache_out</c> become the next step's pools.
    /// </summary>
    private sealed class CpuPagedStepper : IDisposable
    {
        private readonly InferenceSession _session;
        private readonly float[][] _pools;
        private readonly long[][] _poolShapes;
        private readonly int _vocab;

        public CpuPagedStepper(string modelPath, string checkpoint)
        {
            var config = DecoderConfig.Parse(File.ReadAllText(Path.Combine(checkpoint, "config.json")), "config.json");
            var mla = config.Mla!;
            _vocab = config.VocabSize;
            _session = new InferenceSession(modelPath);
            _pools = new float[2 * config.LayerCount][];
            _poolShapes = new long[2 * config.LayerCount][];
            const int Blocks = 32;
            for (var i = 0; i < config.LayerCount; i++)
            {
                _poolShapes[2 * i] = [Blocks, BlockSize, 1, mla.KvLoraRank];
                _poolShapes[(2 * i) + 1] = [Blocks, BlockSize, 1, mla.QkRopeHeadDim];
                _pools[2 * i] = new float[Blocks * BlockSize * mla.KvLoraRank];
                _pools[(2 * i) + 1] = new float[Blocks * BlockSize * mla.QkRopeHeadDim];
            }
        }

        /// <summary>
        /// Greedy-decodes each prompt for <paramref name="steps"/> tokens, prompt r joining at step
        /// <paramref name="arrival"/>(r) and prefilling <paramref name="chunk"/> tokens per step, beside the others.
        /// </summary>
        public List<int>[] Decode(int[][] prompts, int[][] tables, int steps, Func<int, int> arrival, int chunk)
        {
            var generated = prompts.Select(_ => new List<int>()).ToArray();
            var fed = new int[prompts.Length];
            for (var step = 0; generated.Any(g => g.Count < steps); step++)
            {
                var rows = new List<(int Row, int[] Tokens, int Past, bool WantLogits)>();
                for (var r = 0; r < prompts.Length; r++)
                {
                    if (step < arrival(r) || generated[r].Count >= steps)
                    {
                        continue;
                    }

                    if (fed[r] < prompts[r].Length)
                    {
                        var take = Math.Min(chunk, prompts[r].Length - fed[r]);
                        rows.Add((r, prompts[r][fed[r]..(fed[r] + take)], fed[r], fed[r] + take == prompts[r].Length));
                        fed[r] += take;
                    }
                    else
                    {
                        rows.Add((r, [generated[r][^1]], prompts[r].Length + generated[r].Count - 1, true));
                    }
                }

                var logits = Step(rows.Select(x => (x.Tokens, x.Past, tables[x.Row], x.WantLogits)).ToArray());
                var next = 0;
                foreach (var row in rows.Where(x => x.WantLogits))
                {
                    var span = logits.AsSpan(next++ * _vocab, _vocab);
                    var best = 0;
                    for (var i = 1; i < span.Length; i++)
                    {
                        best = span[i] > span[best] ? i : best;
                    }

                    generated[row.Row].Add(best);
                }
            }

            return generated;
        }

        private float[] Step((int[] Tokens, int Past, int[] Table, bool WantLogits)[] rows)
        {
            var ids = rows.SelectMany(r => r.Tokens.Select(t => (long)t)).ToArray();
            var cumulative = new int[rows.Length + 1];
            var logitRows = new List<long>();
            for (var r = 0; r < rows.Length; r++)
            {
                cumulative[r + 1] = cumulative[r] + rows[r].Tokens.Length;
                if (rows[r].WantLogits)
                {
                    logitRows.Add(cumulative[r + 1] - 1);
                }
            }

            var maxBlocks = rows.Max(r => r.Table.Length);
            var table = new int[rows.Length * maxBlocks];
            for (var r = 0; r < rows.Length; r++)
            {
                rows[r].Table.CopyTo(table, r * maxBlocks);
            }

            var metadata = new[] { rows.Max(r => r.Tokens.Length), rows.Max(r => r.Past + r.Tokens.Length) };
            var names = new List<string> { "input_ids", "cumulative_sequence_length", "past_seqlens", "block_table", "logits_indices" };
            var values = new List<OrtValue>
            {
                OrtValue.CreateTensorValueFromMemory(ids, [ids.Length]),
                OrtValue.CreateTensorValueFromMemory(cumulative, [cumulative.Length]),
                OrtValue.CreateTensorValueFromMemory(rows.Select(r => r.Past).ToArray(), [rows.Length]),
                OrtValue.CreateTensorValueFromMemory(table, [rows.Length, maxBlocks]),
                OrtValue.CreateTensorValueFromMemory(logitRows.ToArray(), [logitRows.Count]),
            };
            if (_session.InputMetadata.ContainsKey("attention_metadata"))
            {
                names.Add("attention_metadata");
                values.Add(OrtValue.CreateTensorValueFromMemory(metadata, [2]));
            }

            var outputs = new List<string> { "logits" };
            for (var i = 0; i < _pools.Length; i++)
            {
                var kind = i % 2 == 0 ? "key" : "value";
                names.Add($"{kind}_cache.{i / 2}");
                outputs.Add($"{kind}_cache_out.{i / 2}");
                values.Add(OrtValue.CreateTensorValueFromMemory(_pools[i], _poolShapes[i]));
            }

            try
            {
                using var results = _session.Run(new RunOptions(), names, values, outputs);
                for (var i = 0; i < _pools.Length; i++)
                {
                    _pools[i] = results[i + 1].GetTensorDataAsSpan<float>().ToArray();
                }

                return results[0].GetTensorDataAsSpan<float>().ToArray();
            }
            finally
            {
                foreach (var value in values)
                {
                    value.Dispose();
                }
            }
        }

        public void Dispose() => _session.Dispose();
    }
}
