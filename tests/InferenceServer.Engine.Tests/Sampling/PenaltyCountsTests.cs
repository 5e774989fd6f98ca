using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Sampling;

namespace InferenceServer.Engine.Tests.Sampling;

public sealed class PenaltyCountsTests
{
    [Fact]
    public void Apply_RepetitionOverPromptAndOutput_FrequencyAndPresenceOverOutputOnly()
    {
        // Prompt: 1, 2; output: 2, 3, 3.
        using var counts = new PenaltyCounts(6, [1, 2, 2, 3, 3], promptLength: 2, capacity: 8);
        float[] logits = [1f, 2f, -2f, 4f, 5f, -1f];
        counts.Apply(logits, new SamplingParameters { RepetitionPenalty = 2, FrequencyPenalty = 0.5, PresencePenalty = 0.25 });

        Assert.Equal(1f, logits[0]);
        Assert.Equal(2f / 2, logits[1]);                      // prompt only: repetition, no frequency or presence
        Assert.Equal((-2f * 2) - 0.5f - 0.25f, logits[2]);    // negative: multiplied; once in the output
        Assert.Equal((4f / 2) - (0.5f * 2) - 0.25f, logits[3]); // twice in the output
        Assert.Equal(5f, logits[4]);
        Assert.Equal(-1f, logits[5]);
        Assert.Equal(3, counts.DistinctCount);
        Assert.Equal(2, counts.OutputCount(3));
    }

    [Fact]
    public void AddOutput_CountsNewTokens_AndIgnoresIdsOutsideTheVocabulary()
    {
        using var counts = new PenaltyCounts(4, [7, 0], promptLength: 2, capacity: 1);
        counts.AddOutput(0);
        counts.AddOutput(1);
        counts.AddOutput(1);
        counts.AddOutput(-3);
        Assert.Equal(2, counts.DistinctCount);
        Assert.Equal(1, counts.OutputCount(0));
        Assert.Equal(2, counts.OutputCount(1));

        float[] logits = [1f, 1f, 1f, 1f];
        counts.Apply(logits, new SamplingParameters { PresencePenalty = 1 });
        Assert.Equal([0f, 0f, 1f, 1f], logits);
    }
}
