// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace InferenceServer.Bench;

/// <summary>Prints benchmark results as Markdown tables and reads and writes them as JSON.</summary>
internal static class ResultTable
{
    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>One row per level: throughput, TTFT, TPOT and ITL (mean, p50, p99, in ms).</summary>
    public static string Summary(IReadOnlyList<LevelResult> levels)
    {
        var text = new StringBuilder();
        text.AppendLine("| conc | rate | ok | fail | dur s | req/s | out tok/s | total tok/s | TTFT mean | TTFT p50 | TTFT p99 | TPOT mean | TPOT p50 | TPOT p99 | ITL mean | ITL p50 | ITL p99 |");
        text.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var l in levels)
        {
            var rate = l.RequestRate is { } r ? F(r, 2) : "inf";
            text.AppendLine(CultureInfo.InvariantCulture, $"| {Concurrency(l)} | {rate} | {l.Successful} | {l.Failed} | {F(l.DurationS, 2)} | {F(l.RequestThroughput, 2)} | {F(l.OutputThroughput, 1)} | {F(l.TotalThroughput, 1)} | {Ms(l.TtftMs)} | {Ms(l.TpotMs)} | {Ms(l.ItlMs)} |");
        }

        text.AppendLine("(times in ms)");
        return text.ToString();
    }

    /// <summary>The <c>vllm bench serve</c> style block for one level.</summary>
    public static string Detail(LevelResult l)
    {
        var text = new StringBuilder();
        text.AppendLine("============ Serving Benchmark Result ============");
        Line(text, "Max concurrency", Concurrency(l));
        Line(text, "Request rate (req/s)", l.RequestRate is { } r ? F(r, 2) : "inf");
        Line(text, "Successful requests", l.Successful.ToString(CultureInfo.InvariantCulture));
        Line(text, "Failed requests", l.Failed.ToString(CultureInfo.InvariantCulture));
        Line(text, "Benchmark duration (s)", F(l.DurationS, 2));
        Line(text, "Total input tokens", l.InputTokens.ToString(CultureInfo.InvariantCulture));
        Line(text, "Total generated tokens", l.OutputTokens.ToString(CultureInfo.InvariantCulture));
        Line(text, "Request throughput (req/s)", F(l.RequestThroughput, 2));
        Line(text, "Output token throughput (tok/s)", F(l.OutputThroughput, 2));
        Line(text, "Total token throughput (tok/s)", F(l.TotalThroughput, 2));
        foreach (var (name, d) in (ReadOnlySpan<(string, Distribution)>)[("TTFT", l.TtftMs), ("TPOT", l.TpotMs), ("ITL", l.ItlMs), ("E2EL", l.E2eMs)])
        {
            Line(text, $"Mean {name} (ms)", F(d.Mean, 2));
            Line(text, $"Median {name} (ms)", F(d.P50, 2));
            Line(text, $"P99 {name} (ms)", F(d.P99, 2));
        }

        text.AppendLine("==================================================");
        return text.ToString();
    }

    /// <summary>Writes <paramref name="report"/> to <paramref name="path"/> as JSON.</summary>
    public static void Write(string path, RunReport report) => File.WriteAllText(path, JsonSerializer.Serialize(report, JsonOptions));

    /// <summary>Reads a report written by <see cref="Write"/>.</summary>
    public static RunReport Read(string path) => JsonSerializer.Deserialize<RunReport>(File.ReadAllText(path), JsonOptions)
        ?? throw new InvalidDataException($"{path}: empty report");

    /// <summary>Formats <paramref name="value"/> with <paramref name="decimals"/> decimals, invariantly.</summary>
    public static string F(double value, int decimals) => value.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    private static string Concurrency(LevelResult l) => l.Concurrency > 0 ? l.Concurrency.ToString(CultureInfo.InvariantCulture) : "inf";

    private static string Ms(Distribution d) => $"{F(d.Mean, 1)} | {F(d.P50, 1)} | {F(d.P99, 1)}";

    private static void Line(StringBuilder text, string name, string value) => text.AppendLine(CultureInfo.InvariantCulture, $"{name,-40}{value,10}");
}
