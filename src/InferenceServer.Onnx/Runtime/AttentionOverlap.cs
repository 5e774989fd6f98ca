// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Whether a split model's step runs as two micro-batches so that the memory devices attend for one while the dense
/// segments run for the other (<c>--attention-overlap</c>, ADR 0010).
/// </summary>
public enum AttentionOverlap
{
    /// <summary>
    /// Overlap a step of at least two rows when the last steps' host attention took longer than their dense segments
    /// (so that the dense half-batches, which may cost up to twice one whole batch, hide under attention). The default.
    /// </summary>
    Auto,

    /// <summary>Overlap every step of at least two rows.</summary>
    On,

    /// <summary>Never: attention and dense segments take turns, as in one micro-batch.</summary>
    Off,
}

/// <summary>
/// The overlap decision of a split runner (ADR 0010): <see cref="AttentionOverlap.Auto"/> keeps exponentially weighted
/// averages of each step's seconds of dense segments (the step's driving thread) and of host attention, from whichever
/// form ran, and overlaps when attention is the longer. Not thread-safe: the runner's step thread is its only caller.
/// </summary>
internal sealed class OverlapPolicy
{
    /// <summary>Weight of the newest step in the averages.</summary>
    internal const double Alpha = 0.2;

    private double _dense;
    private double _attention;
    private bool _measured;

    /// <summary>Creates the policy for <paramref name="mode"/>.</summary>
    public OverlapPolicy(AttentionOverlap mode) => Mode = mode;

    /// <summary>The configured mode.</summary>
    public AttentionOverlap Mode { get; }

    /// <summary>Average seconds of dense segments per step (0 until a step is measured).</summary>
    public double DenseSeconds => _dense;

    /// <summary>Average seconds of host attention per step (0 until a step is measured).</summary>
    public double AttentionSeconds => _attention;

    /// <summary>Whether a step of <paramref name="rows"/> rows should run as two micro-batches.</summary>
    public bool ShouldOverlap(int rows) => rows >= 2 && Mode switch
    {
        AttentionOverlap.On => true,
        AttentionOverlap.Auto => _measured && _attention > _dense,
        _ => false,
    };

    /// <summary>Records a step: <paramref name="denseSeconds"/> of dense segments, <paramref name="attentionSeconds"/> of host attention.</summary>
    public void Record(double denseSeconds, double attentionSeconds)
    {
        if (!_measured)
        {
            _dense = denseSeconds;
            _attention = attentionSeconds;
            _measured = true;
            return;
        }

        _dense += Alpha * (denseSeconds - _dense);
        _attention += Alpha * (attentionSeconds - _attention);
    }
}
