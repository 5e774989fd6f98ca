// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Checkpoint;
using InferenceServer.Builder.Onnx.Proto;
using static InferenceServer.Builder.Graph.OnnxGraphWriter;

namespace InferenceServer.Builder.Graph;

/// <summary>
/// Routed experts through ONNX Runtime's <c>com.microsoft.MoE</c> (ADR 0008): only each token's chosen experts run
/// (grouped GEMMs on CUDA), no host round trip. The op routes by softmax top-k over its <c>router_probs</c>; the
/// DeepSeek routing computed in fp32 is handed over as <c>log(w)</c> at the chosen experts and -10000 elsewhere, so the
/// op's softmax gives exactly <c>w_i / W</c> (W the token's sum of chosen weights) over exactly the chosen experts,
/// and its output times W is <c>sum_i w_i expert_i(y)</c> whatever <c>norm_topk_prob</c> and the scaling factor were.
/// The experts' gate and up rows go interleaved into one [E, 2 x I, hidden] weight for the op's SwiGLU with alpha 1,
/// beta 0 and no clamp (<c>silu(gate) x up</c>, the only gated form its CPU kernel also runs), down as [E, hidden, I].
/// </summary>
internal sealed partial class DecoderGraphBuilder
{
    /// <summary>The router value of an expert not chosen: softmax gives it exactly 0 in fp32.</summary>
    private const float NotChosen = -10000f;

    /// <summary>
    /// Whether MoE layers run through <c>com.microsoft.MoE</c>: in the paged graph when T is fp16 (or fp32, which only
    /// the tests build); ONNX Runtime's CUDA MoE kernel has no bf16 registration, so bf16 keeps the dense experts.
    /// </summary>
    private bool UsesMoeOp => _paged && _g.ElementType != TensorProto.Types.DataType.Bfloat16;

    /// <summary>
    /// Layer <paramref name="layer"/>'s routed experts for <paramref name="y"/> [T, hidden] in T: <paramref name="scores"/>
    /// [T, E] fp32 gives the shape, <paramref name="chosen"/> [T, k] the experts, <paramref name="weights"/> [T, k] fp32 theirs.
    /// </summary>
    private string ExpertsByMoeOp(int layer, string y, string scores, string chosen, string weights, MoeConfig moe)
    {
        var c = _config;
        var p = $"model.layers.{layer}.{moe.Names.Block}.";
        var n = $"l{layer}_moe_";
        var experts = moe.RoutedExperts;
        var width = moe.ExpertIntermediateSize;

        var total = _g.Node("ReduceSum", n + "chosen_total", [weights, _g.Int64s(-1)], Attr("keepdims", 1L));
        var baseline = _g.Node("Add", n + "router_baseline", [_g.Node("Mul", n + "router_zeros", [scores, _g.FloatScalar(0f)]), _g.FloatScalar(NotChosen)]);
        var probs = _g.Node("ScatterElements", n + "router_probs_f32", [baseline, chosen, _g.Node("Log", n + "router_log_weights", [weights])], Attr("axis", 1L));

        var fc1 = InterleavedGateUp(p, moe.Names, experts, width, c.HiddenSize);
        var fc2 = StackedExpertsByExpert(p, moe.Names.Down, experts, c.HiddenSize, width);
        var raw = _g.NodeMulti(
            "MoE",
            n + "experts",
            [y, _g.Node("Cast", n + "router_probs", [probs], Attr("to", (long)_g.ElementType)), fc1, string.Empty, fc2],
            [n + "experts_normalized"],
            [
                Attr("k", (long)moe.ExpertsPerToken), Attr("activation_type", "swiglu"), Attr("swiglu_fusion", 1L),
                Attr("activation_alpha", 1f), Attr("activation_beta", 0f), Attr("swiglu_limit", float.MaxValue),
                Attr("normalize_routing_weights", 1L),
            ],
            PagedAttentionDomain)[0];
        return _g.Node("Mul", n + "experts_weighted", [raw, _g.Node("Cast", n + "chosen_total_t", [total], Attr("to", (long)_g.ElementType))]);
    }

    /// <summary>The experts' gate and up weights as one [E, 2 x I, hidden] tensor, rows interleaved (2i gate_i, 2i + 1 up_i).</summary>
    private string InterleavedGateUp(string prefix, MoeWeightNames names, int experts, int width, int hidden)
    {
        var fused = new float[checked(experts * 2 * width * hidden)];
        for (var e = 0; e < experts; e++)
        {
            var gate = _weights.ReadFloat32($"{prefix}experts.{e}.{names.Gate}.weight", width, hidden);
            var up = _weights.ReadFloat32($"{prefix}experts.{e}.{names.Up}.weight", width, hidden);
            for (var i = 0; i < width; i++)
            {
                gate.AsSpan(i * hidden, hidden).CopyTo(fused.AsSpan(((e * 2 * width) + (2 * i)) * hidden));
                up.AsSpan(i * hidden, hidden).CopyTo(fused.AsSpan(((e * 2 * width) + (2 * i) + 1) * hidden));
            }
        }

        return _g.Weight($"{prefix}experts.gate_up_interleaved", fused, experts, 2 * width, hidden);
    }

    /// <summary>The experts' <paramref name="projection"/> weights ([rows, cols] each) as one [E, rows, cols] tensor.</summary>
    private string StackedExpertsByExpert(string prefix, string projection, int experts, int rows, int cols)
    {
        var stacked = new float[checked(experts * rows * cols)];
        for (var e = 0; e < experts; e++)
        {
            _weights.ReadFloat32($"{prefix}experts.{e}.{projection}.weight", rows, cols).CopyTo(stacked.AsSpan(e * rows * cols));
        }

        return _g.Weight($"{prefix}experts.{projection}.by_expert", stacked, experts, rows, cols);
    }
}
