// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Text;
using InferenceServer.Bench;

namespace InferenceServer.LoadGenerator;

/// <summary>
/// Puts server runs and baseline runs (<c>--json</c> reports, one pair per round, in round order) side by side, level by
/// level. Each number is the median over the rounds; the paired ratio is the median of each round's server / baseline
/// ratio, the two sides having run back to back, so that the machine's drift between rounds cancels out.
/// </summary>
internal static class Comparison
{
    /// <summary>A Markdown table of both sides and their ratios (server / baseline), then each side's scaling.</summary>
    public static string Table(IReadOnlyList<RunReport> servers, IReadOnlyList<RunReport> baselines)
    {
        var server = servers[0];
        var concurrencies = servers.SelectMany(static r => r.Levels).Select(static l => l.Concurrency).Distinct().Order().ToList();
        var rounds = concurrencies.Count == 0 ? 0 : Levels(servers, concurrencies[0]).Count;
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"server = {server.Backend} ({server.Target}); baseline = {baselines[0].Backend}; input {server.InputLength}, output {server.OutputLength}; medians over {rounds} rounds; times in ms");
        text.AppendLine();
        text.AppendLine("| conc | server out tok/s | baseline out tok/s | ratio of medians | paired ratio (median) | ratio per round | server TTFT p50 | baseline TTFT p50 | ratio | server TPOT p50 | baseline TPOT p50 | ratio | server ITL p50 | baseline ITL p50 | ratio | server ITL p99 | baseline ITL p99 | ratio |");
        text.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var concurrency in concurrencies)
        {
            var s = Levels(servers, concurrency);
            var b = Levels(baselines, concurrency);
            if (s.Count == 0 || b.Count == 0)
            {
                continue;
            }

            var ratios = s.Zip(b, static (x, y) => y.OutputThroughput > 0 ? x.OutputThroughput / y.OutputThroughput : 0).ToList();
            var perRound = string.Join(" ", ratios.Select(static r => ResultTable.F(r, 2) + "x"));
            var paired = ResultTable.F(Distribution.Percentile([.. ratios.Order()], 50), 2) + "x";
            text.AppendLine(CultureInfo.InvariantCulture, $"| {concurrency} | {Cells(s, b, static l => l.OutputThroughput)} | {paired} | {perRound} | {Cells(s, b, static l => l.TtftMs.P50)} | {Cells(s, b, static l => l.TpotMs.P50)} | {Cells(s, b, static l => l.ItlMs.P50)} | {Cells(s, b, static l => l.ItlMs.P99)} |");
        }

        text.AppendLine();
        foreach (var reports in (ReadOnlySpan<IReadOnlyList<RunReport>>)[servers, baselines])
        {
            var one = Median(Levels(reports, 1), static l => l.OutputThroughput);
            var sixteen = Median(Levels(reports, 16), static l => l.OutputThroughput);
            if (one > 0 && sixteen > 0)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"{reports[0].Backend}: output tok/s at concurrency 16 / concurrency 1 = {ResultTable.F(sixteen, 1)} / {ResultTable.F(one, 1)} = {Ratio(sixteen, one)}");
            }
        }

        return text.ToString();
    }

    /// <summary>
    /// For each level, the run with the median output throughput over <paramref name="reports"/> (the lower middle one
    /// for an even count), as a summary table: one real run per level, not a mix of medians from different runs.
    /// </summary>
    public static string MedianRuns(IReadOnlyList<RunReport> reports, string? label)
    {
        var levels = reports.SelectMany(static r => r.Levels).Select(static l => l.Concurrency).Distinct().Order();
        var median = levels.Select(c => Levels(reports, c).OrderBy(static l => l.OutputThroughput).ToList())
            .Select(static runs => runs[(runs.Count - 1) / 2])
            .ToList();
        return $"{label ?? reports[0].Backend}: the median run of each level (by output tok/s)\n" + ResultTable.Summary(median);
    }

    private static List<LevelResult> Levels(IReadOnlyList<RunReport> reports, int concurrency) =>
        [.. reports.SelectMany(r => r.Levels.Where(l => l.Concurrency == concurrency))];

    private static string Cells(List<LevelResult> server, List<LevelResult> baseline, Func<LevelResult, double> metric)
    {
        var s = Median(server, metric);
        var b = Median(baseline, metric);
        return $"{ResultTable.F(s, 1)} | {ResultTable.F(b, 1)} | {Ratio(s, b)}";
    }

    private static double Median(List<LevelResult> levels, Func<LevelResult, double> metric) =>
        levels.Count == 0 ? 0 : Distribution.Percentile([.. levels.Select(metric).Order()], 50);

    private static string Ratio(double a, double b) => b > 0 ? ResultTable.F(a / b, 2) + "x" : "n/a";
}
