// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Checkpoint;
using InferenceServer.Builder.Onnx.Proto;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// Issue 18's softmax top-k mixtures of experts (Qwen2-MoE, Qwen3-MoE, Mixtral): what the config parse makes of the
/// transformers fixtures, and the paged fp16 graph's structure (the MoE op for the MoE layers only, routing in fp32,
/// Qwen2-MoE's gated shared expert). Their tokens against transformers are checked by the fixture lists of
/// <see cref="BuiltDecoderTests"/> (the dense CPU graph) and <see cref="SplitGraphTests"/> (the split form), and on the
/// GPU by <c>PagedRunnerTests</c>.
/// </summary>
public sealed class SoftmaxMoeTests
{
    private const string Sizes = "\"hidden_size\":64,\"num_hidden_layers\":4,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":128,\"vocab_size\":100";

    [Theory]
    [InlineData("qwen2-moe", false, new[] { 1 }, 48, true)]
    [InlineData("qwen3-moe", true, new[] { 0, 2 }, 0, false)]
    [InlineData("mixtral", true, new int[0], 0, false)]
    public void Fixture_ParsesAsSoftmaxRouting_WithItsDenseLayersAndSharedExpert(string fixture, bool normalized, int[] dense, int shared, bool gated)
    {
        var config = DecoderConfig.Parse(File.ReadAllText(Path.Combine(BuiltModels.Fixture(fixture), "config.json")), fixture);
        var moe = Assert.IsType<MoeConfig>(config.Moe);
        Assert.Equal(MoeRouting.Softmax, moe.Routing);
        Assert.Equal(8, moe.RoutedExperts);
        Assert.Equal(2, moe.ExpertsPerToken);
        Assert.Equal(32, moe.ExpertIntermediateSize);
        Assert.Equal(normalized, moe.NormTopKProb);
        Assert.Equal(1.0, moe.RoutedScalingFactor);
        Assert.Equal(dense, moe.DenseLayers);
        Assert.Equal(shared, moe.SharedWidth);
        Assert.Equal(gated, moe.GatedSharedExpert);
        Assert.Equal(fixture == "mixtral" ? MoeWeightNames.Mixtral : MoeWeightNames.Qwen, moe.Names);
        Assert.Null(config.Mla);
        Assert.Equal(Enumerable.Range(0, 3).Where(l => !dense.Contains(l)), Enumerable.Range(0, 3).Where(moe.IsMoeLayer));
    }

    [Theory]
    [InlineData("\"model_type\":\"qwen2_moe\",\"num_experts\":8,\"num_experts_per_tok\":2,\"moe_intermediate_size\":32,\"mlp_only_layers\":[0,1,2,3]")]
    [InlineData("\"model_type\":\"qwen3_moe\",\"num_experts\":0,\"num_experts_per_tok\":2,\"moe_intermediate_size\":32")]
    [InlineData("\"model_type\":\"qwen3_moe\",\"num_experts_per_tok\":2,\"moe_intermediate_size\":32")]
    [InlineData("\"model_type\":\"qwen2_moe\",\"num_experts\":8,\"num_experts_per_tok\":2,\"moe_intermediate_size\":32,\"decoder_sparse_step\":5")]
    public void NoLayerReachesTheExperts_MeansNoMoe(string settings) =>
        Assert.Null(DecoderConfig.Parse("{" + settings + "," + Sizes + "}", "c").Moe);

    [Fact]
    public void DecoderSparseStep_MakesEveryStepthLayerMoe_AndMlpOnlyLayersStayDense()
    {
        var config = DecoderConfig.Parse(
            "{\"model_type\":\"qwen2_moe\",\"num_experts\":8,\"num_experts_per_tok\":2,\"moe_intermediate_size\":32,\"decoder_sparse_step\":2,\"mlp_only_layers\":[3],"
            + "\"shared_expert_intermediate_size\":0," + Sizes + "}",
            "c");
        var moe = Assert.IsType<MoeConfig>(config.Moe);
        Assert.Equal([false, true, false, false], Enumerable.Range(0, 4).Select(moe.IsMoeLayer));
        Assert.Equal(0, moe.SharedWidth);
        Assert.False(moe.GatedSharedExpert);
    }

    [Theory]
    [InlineData("\"model_type\":\"mixtral\",\"num_local_experts\":2,\"num_experts_per_tok\":3", "num_experts_per_tok 3 with 2 experts")]
    [InlineData("\"model_type\":\"qwen2_moe\",\"num_experts\":8,\"num_experts_per_tok\":2,\"moe_intermediate_size\":32,\"decoder_sparse_step\":0", "decoder_sparse_step 0")]
    [InlineData("\"model_type\":\"qwen3_moe\",\"num_experts\":8,\"num_experts_per_tok\":2", "moe_intermediate_size")]
    [InlineData("\"model_type\":\"mixtral\",\"num_local_experts\":8,\"num_experts_per_tok\":2,\"sliding_window\":64", "sliding_window 64")]
    public void BadMoeSettings_AreRefusedSayingWhich(string settings, string expected)
    {
        var error = Assert.Throws<ModelBuildException>(() => DecoderConfig.Parse("{" + settings + "," + Sizes + "}", "c"));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ServingParse_OfAnMoeConfigWithoutItsSizes_DoesNotRefuseIt()
    {
        // The runtime reads any family's config (an ONNX export's folder may carry a trimmed one); the builder refuses.
        const string Config = "{\"model_type\":\"qwen3_moe\",\"num_experts\":8," + Sizes + "}";
        Assert.Null(DecoderConfig.ParseForServing(Config, "c").Moe);
        Assert.Throws<ModelBuildException>(() => DecoderConfig.Parse(Config, "c"));
    }

    [Theory]
    [InlineData("qwen2-moe")]
    [InlineData("qwen3-moe")]
    [InlineData("mixtral")]
    public void PagedFp16_MoeLayersRunTheChosenExpertsByTheMoeOp_DenseLayersTheirMlp(string fixture)
    {
        var config = DecoderConfig.Parse(File.ReadAllText(Path.Combine(BuiltModels.Fixture(fixture), "config.json")), fixture);
        var moe = config.Moe!;
        ModelProto model;
        using (var stream = File.OpenRead(Path.Combine(BuiltModels.Get(fixture, "fp16", "cuda"), "model.onnx")))
        {
            model = ModelProto.Parser.ParseFrom(stream);
        }

        for (var layer = 0; layer < config.LayerCount; layer++)
        {
            var op = model.Graph.Node.SingleOrDefault(n => n.OpType == "MoE" && n.Name == $"l{layer}_moe_experts");
            if (!moe.IsMoeLayer(layer))
            {
                Assert.Null(op);
                Assert.Contains(model.Graph.Node, n => n.Name == $"l{layer}_down_proj");
                continue;
            }

            // Softmax over the fp32 router logits, top 2; the op gets log(w) at the chosen experts.
            Assert.NotNull(op);
            Assert.Equal(2, op.Attribute.Single(a => a.Name == "k").I);
            Assert.Equal("Softmax", model.Graph.Node.Single(n => n.Name == $"l{layer}_moe_probabilities").OpType);
            Assert.Equal(moe.NormTopKProb, model.Graph.Node.Any(n => n.Name == $"l{layer}_moe_chosen_normalized"));
            Assert.DoesNotContain(model.Graph.Node, n => n.Name == $"l{layer}_moe_scores");
            var fc1 = model.Graph.Initializer.Single(t => t.Name == op.Input[2]);
            Assert.Equal([8L, 2 * 32, 64], fc1.Dims);
            Assert.Equal(fixture == "qwen2-moe", model.Graph.Node.Any(n => n.Name == $"l{layer}_moe_shared_expert_gate_sigmoid"));
            Assert.Equal(fixture == "qwen2-moe", model.Graph.Node.Any(n => n.Name == $"l{layer}_moe_routed_plus_shared"));
        }
    }
}
