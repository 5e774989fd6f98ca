// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Text;
using InferenceServer.Bench;

namespace InferenceServer.LoadGenerator;

/// <summary>
/// Puts server runs and baseline runs (<c>--json</c> reports, one pair per round) side by side, level by level.
/// Each number is the median over the rounds, so that rounds run alternately on a noisy machine even out.
/// </summary>
internal static class Comparison
{
    /// <summary>A Markdown table of both sides and their ratios (server / baseline), then each side's scaling.</summary>
    public static string Table(IReadOnlyList<RunReport> servers, IReadOnlyList<RunReport> baselines)
    {
        var server = servers[0];
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"server = {server.Backend} ({server.Target}); baseline = {baselines[0].Backend}; input {server.InputLength}, output {server.OutputLength}; medians over {servers.Count} server and {baselines.Count} baseline rounds; times in ms");
        text.AppendLine();
        text.AppendLine("| conc | server out tok/s | baseline out tok/s | ratio | ratio per round | server TTFT p50 | baseline TTFT p50 | ratio | server ITL p50 | baseline ITL p50 | ratio | server ITL p99 | baseline ITL p99 | ratio |");
        text.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var concurrency in server.Levels.Select(static l => l.Concurrency))
        {
            var s = Levels(servers, concurrency);
            var b = Levels(baselines, concurrency);
            if (s.Count == 0 || b.Count == 0)
            {
                continue;
            }

            var rounds = string.Join(" ", s.Zip(b, static (x, y) => Ratio(x.OutputThroughput, y.OutputThroughput)));
            text.AppendLine(CultureInfo.InvariantCulture, $"| {concurrency} | {Cells(s, b, static l => l.OutputThroughput)} | {rounds} | {Cells(s, b, static l => l.TtftMs.P50)} | {Cells(s, b, static l => l.ItlMs.P50)} | {Cells(s, b, static l => l.ItlMs.P99)} |");
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
