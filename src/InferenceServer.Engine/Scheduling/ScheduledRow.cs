// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Scheduling;

/// <summary>
/// One row of a model step: a running sequence and the tokens it runs this step (one for a decode, a prompt chunk for a
/// prefill), and whether its next token is the runner's argmax as it stands (decided when the batch is built).
/// </summary>
/// <param name="Sequence">The sequence the row runs.</param>
/// <param name="Chunk">Tokens it runs this step, from <see cref="Sequence.Computed"/> on.</param>
internal readonly record struct ScheduledRow(Sequence Sequence, int Chunk)
{
    /// <summary>Whether the row's token is the runner's reported argmax, so its logits need not come back.</summary>
    public bool TakesArgmax { get; init; }

    /// <summary>Whether the row decodes one token (and goes in the decode batch on a runner that separates them).</summary>
    public bool IsDecode => Chunk == 1;
}
