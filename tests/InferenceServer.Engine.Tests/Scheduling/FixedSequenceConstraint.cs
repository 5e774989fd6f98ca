using InferenceServer.Engine.Requests;

namespace InferenceServer.Engine.Tests.Scheduling;

/// <summary>A test constraint that allows exactly one token at each step: the next of a fixed sequence, then nothing.</summary>
internal sealed class FixedSequenceConstraint(params int[] sequence) : ITokenConstraint
{
    public List<int> Accepted { get; } = [];

    public bool ThrowOnMask { get; init; }

    public void MaskLogits(Span<float> logits)
    {
        if (ThrowOnMask)
        {
            throw new InvalidOperationException("matcher state corrupted");
        }

        var allowed = Accepted.Count < sequence.Length ? sequence[Accepted.Count] : -1;
        for (var i = 0; i < logits.Length; i++)
        {
            if (i != allowed)
            {
                logits[i] = float.NegativeInfinity;
            }
        }
    }

    public bool Accept(int tokenId)
    {
        if (Accepted.Count >= sequence.Length || sequence[Accepted.Count] != tokenId)
        {
            return false;
        }

        Accepted.Add(tokenId);
        return true;
    }
}
