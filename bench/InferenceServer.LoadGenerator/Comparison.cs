// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Text;
using InferenceServer.Bench;

namespace InferenceServer.LoadGenerator;

/// <summary>Puts a server run and a baseline run (both <c>--json</c> reports) side by side, level by level.</summary>
internal static class Comparison
{
    /// <summary>A Markdown table of both sides and their ratios (server / baseline), then the server's scaling.</summary>
    public static string Table(RunReport server, RunReport baseline)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"server = {server.Backend} ({server.Target}); baseline = {baseline.Backend}; input {server.InputLength}, output {server.OutputLength}; times in ms");
        text.AppendLine();
        text.AppendLine("| conc | server out tok/s | baseline out tok/s | ratio | server TTFT p50 | baseline TTFT p50 | ratio | server ITL p50 | baseline ITL p50 | ratio | server ITL p99 | baseline ITL p99 | ratio |");
        text.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var s in server.Levels)
        {
            var b = baseline.Levels.FirstOrDefault(l => l.Concurrency == s.Concurrency);
            if (b is null)
            {
                continue;
            }

            text.AppendLine(CultureInfo.InvariantCulture, $"| {s.Concurrency} | {Cells(s.OutputThroughput, b.OutputThroughput)} | {Cells(s.TtftMs.P50, b.TtftMs.P50)} | {Cells(s.ItlMs.P50, b.ItlMs.P50)} | {Cells(s.ItlMs.P99, b.ItlMs.P99)} |");
        }

        text.AppendLine();
        foreach (var report in (ReadOnlySpan<RunReport>)[server, baseline])
        {
            var one = report.Levels.FirstOrDefault(static l => l.Concurrency == 1);
            var sixteen = report.Levels.FirstOrDefault(static l => l.Concurrency == 16);
            if (one is not null && sixteen is not null)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"{report.Backend}: output tok/s at concurrency 16 / concurrency 1 = {ResultTable.F(sixteen.OutputThroughput, 1)} / {ResultTable.F(one.OutputThroughput, 1)} = {Ratio(sixteen.OutputThroughput, one.OutputThroughput)}");
            }
        }

        return text.ToString();
    }

    private static string Cells(double server, double baseline) => $"{ResultTable.F(server, 1)} | {ResultTable.F(baseline, 1)} | {Ratio(server, baseline)}";

    private static string Ratio(double a, double b) => b > 0 ? ResultTable.F(a / b, 2) + "x" : "n/a";
}
