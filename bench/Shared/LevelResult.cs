// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Bench;

/// <summary>What one request measured: token counts and times in milliseconds.</summary>
internal sealed record RequestSample(int InputTokens, int OutputTokens, double TtftMs, double E2eMs, IReadOnlyList<double> ItlMs);

/// <summary>Mean, median and 99th percentile of a set of times, in milliseconds.</summary>
internal sealed record Distribution(double Mean, double P50, double P99)
{
    /// <summary>The distribution of <paramref name="values"/>; zeros when there are none.</summary>
    public static Distribution Of(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? new Distribution(0, 0, 0) : new Distribution(sorted.Average(), Percentile(sorted, 50), Percentile(sorted, 99));
    }

    /// <summary>The <paramref name="percent"/>th percentile of <paramref name="sorted"/>, interpolated linearly (as numpy does).</summary>
    public static double Percentile(IReadOnlyList<double> sorted, double percent)
    {
        var rank = percent / 100 * (sorted.Count - 1);
        var low = (int)Math.Floor(rank);
        var high = Math.Min(low + 1, sorted.Count - 1);
        return sorted[low] + ((sorted[high] - sorted[low]) * (rank - low));
    }
}

/// <summary>The summary of one benchmark level (one concurrency or request rate), as <c>vllm bench serve</c> reports it.</summary>
internal sealed record LevelResult(
    int Concurrency,
    double? RequestRate,
    int Successful,
    int Failed,
    double DurationS,
    long InputTokens,
    long OutputTokens,
    double RequestThroughput,
    double OutputThroughput,
    double TotalThroughput,
    Distribution TtftMs,
    Distribution TpotMs,
    Distribution ItlMs,
    Distribution E2eMs)
{
    /// <summary>Summarizes <paramref name="samples"/>, the successful requests of a level that took <paramref name="durationS"/>.</summary>
    public static LevelResult From(int concurrency, double? requestRate, IReadOnlyList<RequestSample> samples, int failed, double durationS)
    {
        var input = samples.Sum(static s => (long)s.InputTokens);
        var output = samples.Sum(static s => (long)s.OutputTokens);
        return new LevelResult(
            concurrency,
            requestRate,
            samples.Count,
            failed,
            durationS,
            input,
            output,
            samples.Count / durationS,
            output / durationS,
            (input + output) / durationS,
            Distribution.Of(samples.Select(static s => s.TtftMs)),
            Distribution.Of(samples.Where(static s => s.OutputTokens > 1).Select(static s => (s.E2eMs - s.TtftMs) / (s.OutputTokens - 1))),
            Distribution.Of(samples.SelectMany(static s => s.ItlMs)),
            Distribution.Of(samples.Select(static s => s.E2eMs)));
    }
}

/// <summary>A whole run as written by <c>--json</c>: what was benchmarked, with which lengths, and each level's summary.</summary>
internal sealed record RunReport(string Backend, string Target, int InputLength, int OutputLength, double RangeRatio, int Seed, IReadOnlyList<LevelResult> Levels);
