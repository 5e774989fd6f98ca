using InferenceServer.Engine.Sampling;

namespace InferenceServer.Engine.Tests.Sampling;

public sealed class LogprobCalculatorTests
{
    private static readonly float[] Logits = [0.1f, 2.5f, -1f, 2.5f, 1.9f, float.NegativeInfinity];

    private static double LogSoftmax(int i)
    {
        var sum = Logits.Sum(l => Math.Exp(l));
        return Logits[i] - Math.Log(sum);
    }

    [Fact]
    public void Report_ChosenTokenAndTopK_SortedWithTiesByLowerId()
    {
        var report = LogprobCalculator.Report(Logits, 4, 3);
        Assert.Equal(4, report.TokenId);
        Assert.Equal(LogSoftmax(4), report.Logprob, 5);
        Assert.Equal(3, report.Rank);
        Assert.Equal([1, 3, 4], report.Top.Select(t => t.TokenId));
        Assert.Equal(LogSoftmax(1), report.Top[0].Logprob, 5);
        Assert.Equal(report.Top[0].Logprob, report.Top[1].Logprob);
    }

    [Fact]
    public void Report_TiedBestToken_RanksWithItsTies_AsVllm()
    {
        Assert.Equal(2, LogprobCalculator.Report(Logits, 1, 0).Rank);
        Assert.Empty(LogprobCalculator.Report(Logits, 1, 0).Top);
    }

    [Fact]
    public void Report_KBeyondTheVocabulary_ListsEveryToken_MaskedLast()
    {
        var report = LogprobCalculator.Report(Logits, 5, 10);
        Assert.Equal(6, report.Top.Count);
        Assert.Equal(5, report.Top[^1].TokenId);
        Assert.Equal(float.NegativeInfinity, report.Logprob);
        Assert.Equal(6, report.Rank);
    }

    [Fact]
    public void LogSumExp_IsStableForLargeLogits()
    {
        float[] large = [1000f, 1000f];
        Assert.Equal(1000 + Math.Log(2), LogprobCalculator.LogSumExp(large), 9);
    }
}
