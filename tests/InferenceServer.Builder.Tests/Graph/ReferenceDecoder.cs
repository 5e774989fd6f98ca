// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Checkpoint;
using InferenceServer.Builder.Safetensors;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// A naive, independent forward pass of a Llama-family checkpoint in double precision (whole sequence, no cache),
/// following transformers' modeling code: the oracle for variants the fixtures do not cover (Qwen3 q/k norm, tied
/// embeddings, scaled and partial RoPE). Checked itself against transformers' references on llama-gqa and qwen2.
/// </summary>
internal sealed class ReferenceDecoder
{
    private readonly DecoderConfig _c;
    private readonly Func<string, float[]?> _weight;

    public ReferenceDecoder(string checkpoint)
    {
        _c = DecoderConfig.Parse(File.ReadAllText(Path.Combine(checkpoint, "config.json")), "config.json");
        var weights = SafetensorsCheckpoint.Open(checkpoint);
        float[]? Read(string name) => weights.Contains(name) ? weights.ReadFloat32(name, weights.Info(name).Shape) : null;
        _weight = name => Read(name) ?? Unfused(Read, name);
    }

    /// <summary>Phi-3's fused qkv_proj / gate_up_proj, cut into the separate weights transformers' Phi3 code slices out.</summary>
    private float[]? Unfused(Func<string, float[]?> read, string name)
    {
        var c = _c;
        var rowsBefore = 0;
        var rows = 0;
        string fused;
        if (name.EndsWith("self_attn.q_proj.weight", StringComparison.Ordinal) || name.EndsWith("self_attn.k_proj.weight", StringComparison.Ordinal) || name.EndsWith("self_attn.v_proj.weight", StringComparison.Ordinal))
        {
            fused = Module(name) + "qkv_proj.weight";
            var qRows = c.HeadCount * c.HeadDim;
            var kvRows = c.KvHeadCount * c.HeadDim;
            (rowsBefore, rows) = name.Contains("q_proj", StringComparison.Ordinal) ? (0, qRows) : name.Contains("k_proj", StringComparison.Ordinal) ? (qRows, kvRows) : (qRows + kvRows, kvRows);
        }
        else if (name.EndsWith("mlp.gate_proj.weight", StringComparison.Ordinal) || name.EndsWith("mlp.up_proj.weight", StringComparison.Ordinal))
        {
            fused = Module(name) + "gate_up_proj.weight";
            (rowsBefore, rows) = name.Contains("gate_proj", StringComparison.Ordinal) ? (0, c.IntermediateSize) : (c.IntermediateSize, c.IntermediateSize);
        }
        else
        {
            return null;
        }

        return read(fused)?.AsSpan(rowsBefore * c.HiddenSize, rows * c.HiddenSize).ToArray();
    }

    /// <summary>"model.layers.0.self_attn.q_proj.weight" -> "model.layers.0.self_attn.".</summary>
    private static string Module(string name) => name[..(name.LastIndexOf('.', name.Length - ".weight".Length - 1) + 1)];

    /// <summary>The last position's logits after running <paramref name="tokens"/> from position 0.</summary>
    public double[] LastLogits(IReadOnlyList<int> tokens)
    {
        var c = _c;
        var t = tokens.Count;
        var embed = _weight("model.embed_tokens.weight")!;
        var x = new double[t][];
        for (var i = 0; i < t; i++)
        {
            x[i] = new double[c.HiddenSize];
            for (var j = 0; j < c.HiddenSize; j++)
            {
                x[i][j] = embed[(tokens[i] * c.HiddenSize) + j];
            }
        }

        var rot = c.RotaryDim;
        var (cos, sin) = RopeTables.Tables(c.Rope, rot, t);
        for (var l = 0; l < c.LayerCount; l++)
        {
            var p = $"model.layers.{l}.";
            var heads = c.HeadCount;
            var kvHeads = c.KvHeadCount;
            var d = c.HeadDim;
            var xn = x.Select(row => RmsNorm(row, _weight(p + "input_layernorm.weight")!)).ToArray();
            if (c.Mla is { } mla)
            {
                var latent = LatentAttention(p, xn, mla, cos, sin);
                for (var i = 0; i < t; i++)
                {
                    Add(x[i], Linear(latent[i], p + "self_attn.o_proj", c.HiddenSize));
                }

                Mlp(p, x);
                continue;
            }

            var q = xn.Select(row => Linear(row, p + "self_attn.q_proj", heads * d)).ToArray();
            var k = xn.Select(row => Linear(row, p + "self_attn.k_proj", kvHeads * d)).ToArray();
            var v = xn.Select(row => Linear(row, p + "self_attn.v_proj", kvHeads * d)).ToArray();
            for (var i = 0; i < t; i++)
            {
                HeadNormAndRope(q[i], heads, _weight(p + "self_attn.q_norm.weight"), cos, sin, i);
                HeadNormAndRope(k[i], kvHeads, _weight(p + "self_attn.k_norm.weight"), cos, sin, i);
            }

            var attention = new double[t][];
            for (var i = 0; i < t; i++)
            {
                attention[i] = new double[heads * d];
                for (var h = 0; h < heads; h++)
                {
                    var kvh = h / (heads / kvHeads);
                    var scores = new double[i + 1];
                    for (var j = 0; j <= i; j++)
                    {
                        double dot = 0;
                        for (var e = 0; e < d; e++)
                        {
                            dot += q[i][(h * d) + e] * k[j][(kvh * d) + e];
                        }

                        scores[j] = dot / Math.Sqrt(d);
                    }

                    var max = scores.Max();
                    var sum = scores.Sum(s => Math.Exp(s - max));
                    for (var j = 0; j <= i; j++)
                    {
                        var weight = Math.Exp(scores[j] - max) / sum;
                        for (var e = 0; e < d; e++)
                        {
                            attention[i][(h * d) + e] += weight * v[j][(kvh * d) + e];
                        }
                    }
                }
            }

            for (var i = 0; i < t; i++)
            {
                Add(x[i], Linear(attention[i], p + "self_attn.o_proj", c.HiddenSize));
            }

            Mlp(p, x);
        }

        var last = RmsNorm(x[t - 1], _weight("model.norm.weight")!);
        return Linear(last, c.TieWordEmbeddings ? "model.embed_tokens" : "lm_head", c.VocabSize);
    }

    private void Mlp(string p, double[][] x)
    {
        var c = _c;
        var layer = int.Parse(p.Split('.')[2], System.Globalization.CultureInfo.InvariantCulture);
        if (c.Moe is { } moe && moe.IsMoeLayer(layer))
        {
            for (var i = 0; i < x.Length; i++)
            {
                Add(x[i], MixtureOfExperts(p + "mlp.", RmsNorm(x[i], _weight(p + "post_attention_layernorm.weight")!), moe));
            }

            return;
        }

        for (var i = 0; i < x.Length; i++)
        {
            {
                var y = RmsNorm(x[i], _weight(p + "post_attention_layernorm.weight")!);
                var gate = Linear(y, p + "mlp.gate_proj", c.IntermediateSize);
                var up = Linear(y, p + "mlp.up_proj", c.IntermediateSize);
                for (var e = 0; e < gate.Length; e++)
                {
                    gate[e] = gate[e] / (1 + Math.Exp(-gate[e])) * up[e];
                }

                Add(x[i], Linear(gate, p + "mlp.down_proj", c.HiddenSize));
            }
        }
    }

    /// <summary>One token through DeepSeek-V3's MoE, expert by expert, as transformers' DeepseekV3MoE does.</summary>
    private double[] MixtureOfExperts(string p, double[] y, MoeConfig moe)
    {
        var e = moe.RoutedExperts;
        var scores = Linear(y, p + "gate", e).Select(v => 1 / (1 + Math.Exp(-v))).ToArray();
        var bias = _weight(p + "gate.e_score_correction_bias")!;
        var choice = scores.Select((v, i) => v + bias[i]).ToArray();
        var perGroup = e / moe.Groups;
        var groupScores = Enumerable.Range(0, moe.Groups)
            .Select(g => choice.Skip(g * perGroup).Take(perGroup).OrderByDescending(v => v).Take(2).Sum())
            .ToArray();
        var keptGroups = Enumerable.Range(0, moe.Groups).OrderByDescending(g => groupScores[g]).Take(moe.TopKGroups).ToHashSet();
        var masked = choice.Select((v, i) => keptGroups.Contains(i / perGroup) ? v : 0.0).ToArray();
        var chosen = Enumerable.Range(0, e).OrderByDescending(i => masked[i]).Take(moe.ExpertsPerToken).ToArray();
        var weights = chosen.Select(i => scores[i]).ToArray();
        if (moe.NormTopKProb)
        {
            var sum = weights.Sum() + 1e-20;
            weights = weights.Select(w => w / sum).ToArray();
        }

        var output = new double[y.Length];
        for (var k = 0; k < chosen.Length; k++)
        {
            var expert = ExpertMlp(y, $"{p}experts.{chosen[k]}.", moe.ExpertIntermediateSize);
            for (var i = 0; i < y.Length; i++)
            {
                output[i] += expert[i] * weights[k] * moe.RoutedScalingFactor;
            }
        }

        if (moe.SharedExperts > 0)
        {
            Add(output, ExpertMlp(y, p + "shared_experts.", moe.ExpertIntermediateSize * moe.SharedExperts));
        }

        return output;
    }

    private double[] ExpertMlp(double[] y, string p, int width)
    {
        var gate = Linear(y, p + "gate_proj", width);
        var up = Linear(y, p + "up_proj", width);
        for (var i = 0; i < width; i++)
        {
            gate[i] = gate[i] / (1 + Math.Exp(-gate[i])) * up[i];
        }

        return Linear(gate, p + "down_proj", _c.HiddenSize);
    }

    /// <summary>
    /// DeepSeek-V3 attention as transformers writes it (no absorption): per head, key = [k_nope from kv_b_proj,
    /// shared roped k_rope], value from kv_b_proj, query = [q_nope, roped q_rope]; rope_interleave de-interleaves
    /// (pairs to halves) before rotating. Returns each position's concatenated head outputs (before o_proj).
    /// </summary>
    private double[][] LatentAttention(string p, double[][] xn, MlaConfig mla, float[] cos, float[] sin)
    {
        var c = _c;
        var t = xn.Length;
        var heads = c.HeadCount;
        var qk = mla.QkHeadDim;
        var nope = mla.QkNopeHeadDim;
        var rope = mla.QkRopeHeadDim;
        var q = new double[t][];
        var keys = new double[t][];
        var values = new double[t][];
        for (var i = 0; i < t; i++)
        {
            q[i] = mla.QLoraRank is { } qRank
                ? Linear(LatentNorm(Linear(xn[i], p + "self_attn.q_a_proj", qRank), p + "self_attn.q_a_layernorm.weight", mla), p + "self_attn.q_b_proj", heads * qk)
                : Linear(xn[i], p + "self_attn.q_proj", heads * qk);
            var compressed = Linear(xn[i], p + "self_attn.kv_a_proj_with_mqa", mla.KvLoraRank + rope);
            var kRope = compressed[mla.KvLoraRank..];
            var kv = Linear(LatentNorm(compressed[..mla.KvLoraRank], p + "self_attn.kv_a_layernorm.weight", mla), p + "self_attn.kv_b_proj", heads * (nope + mla.VHeadDim));
            RotateMla(kRope, mla, cos, sin, i);
            keys[i] = new double[heads * qk];
            values[i] = new double[heads * mla.VHeadDim];
            for (var h = 0; h < heads; h++)
            {
                var qRope = q[i].AsSpan((h * qk) + nope, rope).ToArray();
                RotateMla(qRope, mla, cos, sin, i);
                qRope.CopyTo(q[i].AsSpan((h * qk) + nope));
                kv.AsSpan(h * (nope + mla.VHeadDim), nope).CopyTo(keys[i].AsSpan(h * qk));
                kRope.CopyTo(keys[i].AsSpan((h * qk) + nope));
                kv.AsSpan((h * (nope + mla.VHeadDim)) + nope, mla.VHeadDim).CopyTo(values[i].AsSpan(h * mla.VHeadDim));
            }
        }

        // transformers: scaling = qk_head_dim^-0.5 (TransMLA: query_pre_attn_scalar^-0.5), times mscale^2 when the
        // rope scaling names mscale_all_dim.
        var scale = 1 / Math.Sqrt(mla.QueryPreAttnScalar ?? qk);
        if (c.Rope.Type != "default" && c.Rope.MscaleAllDim is { } mscaleAllDim && mscaleAllDim != 0 && c.Rope.Factor > 1)
        {
            var mscale = (0.1 * mscaleAllDim * Math.Log(c.Rope.Factor)) + 1;
            scale *= mscale * mscale;
        }

        var output = new double[t][];
        for (var i = 0; i < t; i++)
        {
            output[i] = new double[heads * mla.VHeadDim];
            for (var h = 0; h < heads; h++)
            {
                var scores = new double[i + 1];
                for (var j = 0; j <= i; j++)
                {
                    double dot = 0;
                    for (var e = 0; e < qk; e++)
                    {
                        dot += q[i][(h * qk) + e] * keys[j][(h * qk) + e];
                    }

                    scores[j] = dot * scale;
                }

                var max = scores.Max();
                var sum = scores.Sum(s => Math.Exp(s - max));
                for (var j = 0; j <= i; j++)
                {
                    var weight = Math.Exp(scores[j] - max) / sum;
                    for (var e = 0; e < mla.VHeadDim; e++)
                    {
                        output[i][(h * mla.VHeadDim) + e] += weight * values[j][(h * mla.VHeadDim) + e];
                    }
                }
            }
        }

        return output;
    }

    /// <summary>RMSNorm by <paramref name="weight"/> when the checkpoint has latent norms (TransMLA's converted models do not).</summary>
    private double[] LatentNorm(double[] x, string weight, MlaConfig mla) => mla.LatentNorms ? RmsNorm(x, _weight(weight)!) : x;

    private static void RotateMla(double[] x, MlaConfig mla, float[] cos, float[] sin, int position)
    {
        var half = x.Length / 2;
        if (mla.RopeInterleave)
        {
            var pairs = x.ToArray();
            for (var j = 0; j < half; j++)
            {
                x[j] = pairs[2 * j];
                x[half + j] = pairs[(2 * j) + 1];
            }
        }

        for (var e = 0; e < half; e++)
        {
            var c = cos[(position * half) + e];
            var s = sin[(position * half) + e];
            var x1 = x[e];
            var x2 = x[e + half];
            x[e] = (x1 * c) - (x2 * s);
            x[e + half] = (x2 * c) + (x1 * s);
        }
    }

    private void HeadNormAndRope(double[] x, int heads, float[]? norm, float[] cos, float[] sin, int position)
    {
        var d = _c.HeadDim;
        var half = _c.RotaryDim / 2;
        for (var h = 0; h < heads; h++)
        {
            var head = x.AsSpan(h * d, d);
            if (norm is not null)
            {
                RmsNorm(head.ToArray(), norm).CopyTo(head);
            }

            for (var e = 0; e < half; e++)
            {
                var c = cos[(position * half) + e];
                var s = sin[(position * half) + e];
                var x1 = head[e];
                var x2 = head[e + half];
                head[e] = (x1 * c) - (x2 * s);
                head[e + half] = (x2 * c) + (x1 * s);
            }
        }
    }

    private double[] RmsNorm(double[] x, float[] weight)
    {
        var mean = x.Sum(v => v * v) / x.Length;
        var scale = 1 / Math.Sqrt(mean + _c.RmsNormEps);
        return x.Select((v, i) => v * scale * weight[i]).ToArray();
    }

    private double[] Linear(double[] x, string prefix, int outFeatures)
    {
        var w = _weight(prefix + ".weight")!;
        var b = _weight(prefix + ".bias");
        var result = new double[outFeatures];
        for (var o = 0; o < outFeatures; o++)
        {
            double sum = b?[o] ?? 0;
            for (var i = 0; i < x.Length; i++)
            {
                sum += w[(o * x.Length) + i] * x[i];
            }

            result[o] = sum;
        }

        return result;
    }

    private static void Add(double[] x, double[] y)
    {
        for (var i = 0; i < x.Length; i++)
        {
            x[i] += y[i];
        }
    }
}
