// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Checkpoint;
using InferenceServer.Builder.Onnx.Proto;
using static InferenceServer.Builder.Graph.OnnxGraphWriter;

namespace InferenceServer.Builder.Graph;

/// <summary>
/// Mixture-of-experts MLP, routed as transformers does. DeepSeek-V3 (<c>DeepseekV3TopkRouter</c>): sigmoid scores;
/// choice scores = scores + e_score_correction_bias; groups ranked by the sum of their best two choice scores, the top
/// <c>topk_group</c> groups kept; the top <c>num_experts_per_tok</c> experts of the kept groups chosen; their weights are
/// the plain scores, normalized when <c>norm_topk_prob</c>, times <c>routed_scaling_factor</c>; shared experts always on.
/// Qwen2-MoE, Qwen3-MoE and Mixtral (<see cref="MoeRouting.Softmax"/>): softmax over every expert, the top k and their
/// probabilities, renormalized when <c>norm_topk_prob</c> (always for Mixtral); Qwen2-MoE's shared expert is scaled by
/// <c>sigmoid(shared_expert_gate(y))</c>.
/// The dense graph (and the paged one in bf16) computes every expert densely and weights them by the sparse routing
/// weights (exact, cheap for small MoE); the paged graph in fp16 runs only the chosen experts through ONNX Runtime's
/// <c>com.microsoft.MoE</c> (the <c>.PagedMoe</c> part, ADR 0008).
/// </summary>
internal sealed partial class DecoderGraphBuilder
{
    private string MixtureOfExperts(int layer, string h, MoeConfig moe)
    {
        var c = _config;
        var p = $"model.layers.{layer}.{moe.Names.Block}.";
        var n = $"l{layer}_moe_";
        var experts = moe.RoutedExperts;
        var y = RmsNorm($"l{layer}_post_attention_norm", h, $"model.layers.{layer}.post_attention_layernorm.weight", c.HiddenSize);

        // Router.
        // The routing runs in fp32 in every graph (transformers' router does): the paged graph casts from T and back.
        var logits = ToFloat(n + "router_logits_f32", _g.Node("Gemm", n + "router_logits", [y, Linear(p + "gate.weight", experts, c.HiddenSize)], Attr("transB", 1L)));
        var (scores, chosenExperts, weights) = moe.Routing == MoeRouting.Softmax ? SoftmaxRouting(n, logits, moe) : SigmoidGroupLimitedRouting(n, p, logits, moe);
        var routed = UsesMoeOp ? ExpertsByMoeOp(layer, y, scores, chosenExperts, weights, moe) : DenseExperts(layer, y, scores, chosenExperts, weights, moe);
        var output = routed;
        if (moe.SharedWidth > 0)
        {
            var sharedWidth = moe.SharedWidth;
            var sp = p + moe.Names.Shared + ".";
            var sGate = _g.Node("Gemm", n + "shared_gate", [y, Linear(sp + "gate_proj.weight", sharedWidth, c.HiddenSize)], Attr("transB", 1L));
            var sUp = _g.Node("Gemm", n + "shared_up", [y, Linear(sp + "up_proj.weight", sharedWidth, c.HiddenSize)], Attr("transB", 1L));
            var sAct = _g.Node("Mul", n + "shared_gate_up", [_g.Node("Mul", n + "shared_silu", [sGate, _g.Node("Sigmoid", n + "shared_sigmoid", [sGate])]), sUp]);
            var shared = _g.Node("Gemm", n + "shared_down", [sAct, Linear(sp + "down_proj.weight", c.HiddenSize, sharedWidth)], Attr("transB", 1L));
            if (moe.GatedSharedExpert)
            {
                // Qwen2-MoE: sigmoid(shared_expert_gate(y)) [T, 1] scales the shared expert's output.
                var gate = _g.Node("Gemm", n + "shared_expert_gate", [y, Linear(p + "shared_expert_gate.weight", 1, c.HiddenSize)], Attr("transB", 1L));
                shared = _g.Node("Mul", n + "shared_gated", [shared, _g.Node("Sigmoid", n + "shared_expert_gate_sigmoid", [gate])]);
            }

            output = _g.Node("Add", n + "routed_plus_shared", [routed, shared]);
        }

        return Residual(n + "residual", h, output);
    }

    /// <summary>
    /// Softmax top-k routing over fp32 router logits [T, E]: the probabilities (the scores), the top k experts and their
    /// probabilities, renormalized to sum to 1 when <see cref="MoeConfig.NormTopKProb"/>.
    /// </summary>
    private (string Scores, string Chosen, string Weights) SoftmaxRouting(string n, string logits, MoeConfig moe)
    {
        var probabilities = _g.Node("Softmax", n + "probabilities", [logits], Attr("axis", -1L));
        var top = _g.NodeMulti("TopK", n + "chosen", [probabilities, _g.Int64s(moe.ExpertsPerToken)], [n + "chosen_values", n + "chosen_indices"], [Attr("axis", -1L)], string.Empty);
        var weights = top[0];
        if (moe.NormTopKProb)
        {
            weights = _g.Node("Div", n + "chosen_normalized", [weights, _g.Node("ReduceSum", n + "chosen_sum", [weights, _g.Int64s(-1)], Attr("keepdims", 1L))]);
        }

        return (probabilities, top[1], weights);
    }

    /// <summary>DeepSeek-V3's routing over fp32 router logits [T, E] (the class summary): the sigmoid scores, the chosen experts, their weights.</summary>
    private (string Scores, string Chosen, string Weights) SigmoidGroupLimitedRouting(string n, string p, string logits, MoeConfig moe)
    {
        var experts = moe.RoutedExperts;
        var scores = _g.Node("Sigmoid", n + "scores", [logits]);
        var bias = ToFloat(n + "bias_f32", _g.Weight(p + "gate.e_score_correction_bias", _weights.ReadFloat32(p + "gate.e_score_correction_bias", experts), experts));
        var choice = _g.Node("Add", n + "choice", [scores, bias]);
        if (moe.TopKGroups < moe.Groups)
        {
            var perGroup = experts / moe.Groups;
            var grouped = _g.Node("Reshape", n + "grouped", [choice, _g.Int64s(-1, moe.Groups, perGroup)]);
            var bestTwo = _g.NodeMulti("TopK", n + "group_best_two", [grouped, _g.Int64s(2)], [n + "group_best_two_values", n + "group_best_two_indices"], [Attr("axis", -1L)], string.Empty);
            var groupScores = _g.Node("ReduceSum", n + "group_scores", [bestTwo[0], _g.Int64s(-1)], Attr("keepdims", 0L));
            var topGroups = _g.NodeMulti("TopK", n + "top_groups", [groupScores, _g.Int64s(moe.TopKGroups)], [n + "top_group_values", n + "top_group_indices"], [Attr("axis", -1L)], string.Empty);
            var groupMask = _g.Node("ScatterElements", n + "group_mask", [_g.Node("Mul", n + "group_zeros", [groupScores, _g.FloatScalar(0f)]), topGroups[1], _g.Node("Add", n + "group_ones", [_g.Node("Mul", n + "group_ones_zero", [topGroups[0], _g.FloatScalar(0f)]), _g.FloatScalar(1f)])], Attr("axis", 1L));
            var expertMask = _g.Node("Expand", n + "group_mask_experts", [_g.Node("Unsqueeze", n + "group_mask_3d", [groupMask, _g.Int64s(-1)]), _g.Int64s(1, moe.Groups, perGroup)]);
            var keep = _g.Node("Cast", n + "keep", [_g.Node("Reshape", n + "keep_flat", [expertMask, _g.Int64s(-1, experts)])], Attr("to", (long)TensorProto.Types.DataType.Bool));
            choice = _g.Node("Where", n + "choice_masked", [keep, choice, _g.FloatScalar(0f)]);
        }

        var chosen = _g.NodeMulti("TopK", n + "chosen", [choice, _g.Int64s(moe.ExpertsPerToken)], [n + "chosen_values", n + "chosen_indices"], [Attr("axis", -1L)], string.Empty);
        var weights = _g.Node("GatherElements", n + "chosen_scores", [scores, chosen[1]], Attr("axis", 1L));
        if (moe.NormTopKProb)
        {
            var sum = _g.Node("ReduceSum", n + "chosen_sum", [weights, _g.Int64s(-1)], Attr("keepdims", 1L));
            weights = _g.Node("Div", n + "chosen_normalized", [weights, _g.Node("Add", n + "chosen_sum_eps", [sum, _g.FloatScalar(1e-20f)])]);
        }

        return (scores, chosen[1], _g.Node("Mul", n + "chosen_weights", [weights, _g.FloatScalar((float)moe.RoutedScalingFactor)]));
    }

    /// <summary>
    /// Every expert computed densely, weighted by the scattered routing weights: gate/up stacked by rows [E x I, hidden],
    /// down stacked by columns [hidden, E x I]; sum_e w_e down_e(a_e) = down_all(concat_e(w_e a_e)).
    /// </summary>
    private string DenseExperts(int layer, string y, string scores, string chosen, string weights, MoeConfig moe)
    {
        var c = _config;
        var p = $"model.layers.{layer}.{moe.Names.Block}.";
        var n = $"l{layer}_moe_";
        var experts = moe.RoutedExperts;
        var width = moe.ExpertIntermediateSize;
        var routing = _g.Node("ScatterElements", n + "routing", [_g.Node("Mul", n + "routing_zeros", [scores, _g.FloatScalar(0f)]), chosen, weights], Attr("axis", 1L));
        var gate = _g.Node("Gemm", n + "gate_proj", [y, StackedExperts(p, moe.Names.Gate, experts, width, c.HiddenSize, byRows: true)], Attr("transB", 1L));
        var up = _g.Node("Gemm", n + "up_proj", [y, StackedExperts(p, moe.Names.Up, experts, width, c.HiddenSize, byRows: true)], Attr("transB", 1L));
        var activated = _g.Node("Mul", n + "gate_up", [_g.Node("Mul", n + "gate_silu", [gate, _g.Node("Sigmoid", n + "gate_sigmoid", [gate])]), up]);
        var perExpert = _g.Node("Reshape", n + "per_expert", [activated, _g.Int64s(-1, experts, width)]);
        var routingT = _paged ? _g.Node("Cast", n + "routing_t", [routing], Attr("to", (long)_g.ElementType)) : routing;
        var weighted = _g.Node("Mul", n + "weighted", [perExpert, _g.Node("Unsqueeze", n + "routing_3d", [routingT, _g.Int64s(-1)])]);
        var flat = _g.Node("Reshape", n + "weighted_flat", [weighted, _g.Int64s(-1, experts * width)]);
        return _g.Node("Gemm", n + "down_proj", [flat, StackedExperts(p, moe.Names.Down, experts, c.HiddenSize, width, byRows: false)], Attr("transB", 1L));

    }

    /// <summary><paramref name="x"/> cast to fp32 in the paged graph (T is fp16 or bf16), else itself.</summary>
    private string ToFloat(string name, string x) =>
        _paged ? _g.Node("Cast", name, [x], Attr("to", (long)TensorProto.Types.DataType.Float)) : x;

    /// <summary>
    /// The experts' <paramref name="projection"/> weights ([rows, cols] each, per-expert tensors
    /// <c>experts.{e}.{projection}.weight</c>) stacked by rows ([E x rows, cols]) or by columns ([rows, E x cols]).
    /// </summary>
    private string StackedExperts(string prefix, string projection, int experts, int rows, int cols, bool byRows)
    {
        var stacked = new float[(long)experts * rows * cols];
        for (var e = 0; e < experts; e++)
        {
            var weight = _weights.ReadFloat32($"{prefix}experts.{e}.{projection}.weight", rows, cols);
            if (byRows)
            {
                weight.CopyTo(stacked.AsSpan(e * rows * cols));
            }
            else
            {
                for (var r = 0; r < rows; r++)
                {
                    weight.AsSpan(r * cols, cols).CopyTo(stacked.AsSpan((r * experts * cols) + (e * cols)));
                }
            }
        }

        return byRows
            ? _g.Weight($"{prefix}experts.{projection}.stacked", stacked, experts * rows, cols)
            : _g.Weight($"{prefix}experts.{projection}.stacked", stacked, rows, experts * cols);
    }
}
