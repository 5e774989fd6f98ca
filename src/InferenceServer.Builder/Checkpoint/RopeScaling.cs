// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Checkpoint;

/// <summary>
/// Rotary position embedding settings, from <c>rope_parameters</c> (newer configs) or <c>rope_theta</c> plus
/// <c>rope_scaling</c> (older configs). Field names and defaults follow Hugging Face <c>transformers</c>.
/// </summary>
public sealed record RopeScaling
{
    /// <summary><c>default</c>, <c>linear</c>, <c>llama3</c> or <c>yarn</c>.</summary>
    public required string Type { get; init; }

    /// <summary>The base of the inverse frequencies (<c>rope_theta</c>).</summary>
    public required double Theta { get; init; }

    /// <summary>Scaling factor (linear, llama3, yarn).</summary>
    public double Factor { get; init; } = 1.0;

    /// <summary>Context length the model was pre-trained with (llama3, yarn).</summary>
    public int OriginalMaxPositionEmbeddings { get; init; }

    /// <summary>llama3: wavelengths below <c>original / high_freq_factor</c> keep their frequency.</summary>
    public double HighFreqFactor { get; init; } = 4.0;

    /// <summary>llama3: wavelengths above <c>original / low_freq_factor</c> are divided by the factor.</summary>
    public double LowFreqFactor { get; init; } = 1.0;

    /// <summary>yarn: the fast boundary of the extrapolation ramp, in rotations.</summary>
    public double BetaFast { get; init; } = 32.0;

    /// <summary>yarn: the slow boundary of the ramp, in rotations.</summary>
    public double BetaSlow { get; init; } = 1.0;

    /// <summary>yarn: cos/sin scale; null derives it from the factor (and <c>mscale</c> / <c>mscale_all_dim</c>).</summary>
    public double? AttentionFactor { get; init; }

    /// <summary>yarn: <c>mscale</c>, used with <see cref="MscaleAllDim"/> to derive the attention factor.</summary>
    public double? Mscale { get; init; }

    /// <summary>yarn: <c>mscale_all_dim</c>.</summary>
    public double? MscaleAllDim { get; init; }

    /// <summary>yarn: whether the ramp bounds are rounded to whole dimensions (<c>truncate</c>, default true).</summary>
    public bool Truncate { get; init; } = true;

    /// <summary>Fraction of each head's dimensions that rotate (<c>partial_rotary_factor</c>).</summary>
    public double PartialRotaryFactor { get; init; } = 1.0;
}
