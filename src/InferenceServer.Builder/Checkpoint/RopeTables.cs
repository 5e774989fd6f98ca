// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Checkpoint;

/// <summary>
/// Computes RoPE inverse frequencies and cos/sin tables the way Hugging Face <c>transformers</c> does
/// (<c>modeling_rope_utils</c>): inverse frequencies in fp32, angle = position x frequency in fp32, and yarn's attention
/// factor folded into cos and sin.
/// </summary>
internal static class RopeTables
{
    /// <summary>Inverse frequencies for <paramref name="rotaryDim"/> rotating dimensions, and the cos/sin scale.</summary>
    public static (float[] InverseFrequencies, float AttentionFactor) InverseFrequencies(RopeScaling rope, int rotaryDim)
    {
        var half = rotaryDim / 2;
        var baseFrequencies = new double[half];
        for (var i = 0; i < half; i++)
        {
            // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), in fp32.
            baseFrequencies[i] = 1.0f / (float)Math.Pow(rope.Theta, (float)(2 * i) / rotaryDim);
        }

        var result = new float[half];
        var attentionFactor = 1.0;
        switch (rope.Type)
        {
            case "default":
                Copy(baseFrequencies, result, 1.0);
                break;
            case "linear":
                Copy(baseFrequencies, result, rope.Factor);
                break;
            case "llama3":
                Llama3(rope, baseFrequencies, result);
                break;
            case "yarn":
                attentionFactor = Yarn(rope, rotaryDim, result);
                break;
            default:
                throw new ModelBuildException($"rope_type '{rope.Type}' is not supported");
        }

        return (result, (float)attentionFactor);
    }

    /// <summary>
    /// The cos and sin tables, each <c>[positions, rotaryDim / 2]</c> row-major, with the attention factor applied.
    /// </summary>
    public static (float[] Cos, float[] Sin) Tables(RopeScaling rope, int rotaryDim, int positions)
    {
        var (inverse, factor) = InverseFrequencies(rope, rotaryDim);
        var half = inverse.Length;
        var cos = new float[positions * half];
        var sin = new float[positions * half];
        for (var p = 0; p < positions; p++)
        {
            for (var i = 0; i < half; i++)
            {
                var angle = (float)p * inverse[i];
                cos[(p * half) + i] = (float)Math.Cos(angle) * factor;
                sin[(p * half) + i] = (float)Math.Sin(angle) * factor;
            }
        }

        return (cos, sin);
    }

    private static void Copy(double[] source, float[] destination, double divisor)
    {
        for (var i = 0; i < source.Length; i++)
        {
            destination[i] = (float)(source[i] / divisor);
        }
    }

    private static void Llama3(RopeScaling rope, double[] inverse, float[] result)
    {
        var old = (double)rope.OriginalMaxPositionEmbeddings;
        var lowFreqWavelen = old / rope.LowFreqFactor;
        var highFreqWavelen = old / rope.HighFreqFactor;
        for (var i = 0; i < inverse.Length; i++)
        {
            var wavelen = 2 * Math.PI / inverse[i];
            var scaled = wavelen > lowFreqWavelen ? inverse[i] / rope.Factor : inverse[i];
            if (wavelen >= highFreqWavelen && wavelen <= lowFreqWavelen)
            {
                var smooth = ((old / wavelen) - rope.LowFreqFactor) / (rope.HighFreqFactor - rope.LowFreqFactor);
                scaled = ((1 - smooth) * inverse[i] / rope.Factor) + (smooth * inverse[i]);
            }

            result[i] = (float)scaled;
        }
    }

    private static double Yarn(RopeScaling rope, int dim, float[] result)
    {
        var factor = rope.Factor;
        static double GetMscale(double scale, double mscale) => scale <= 1 ? 1.0 : (0.1 * mscale * Math.Log(scale)) + 1.0;

        var attentionFactor = rope.AttentionFactor
            ?? (rope.Mscale is { } m && rope.MscaleAllDim is { } mad ? GetMscale(factor, m) / GetMscale(factor, mad) : GetMscale(factor, 1.0));

        double CorrectionDim(double rotations) =>
            dim * Math.Log(rope.OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(rope.Theta));

        var low = CorrectionDim(rope.BetaFast);
        var high = CorrectionDim(rope.BetaSlow);
        if (rope.Truncate)
        {
            low = Math.Floor(low);
            high = Math.Ceiling(high);
        }

        low = Math.Max(low, 0);
        high = Math.Min(high, dim - 1);
        if (low == high)
        {
            high += 0.001;
        }

        for (var i = 0; i < result.Length; i++)
        {
            var posFreq = Math.Pow(rope.Theta, (double)(2 * i) / dim);
            var extrapolation = 1.0 / posFreq;
            var interpolation = 1.0 / (factor * posFreq);
            var ramp = Math.Clamp((i - low) / (high - low), 0.0, 1.0);
            var extrapolationFactor = 1 - ramp;
            result[i] = (float)((interpolation * (1 - extrapolationFactor)) + (extrapolation * extrapolationFactor));
        }

        return attentionFactor;
    }
}
