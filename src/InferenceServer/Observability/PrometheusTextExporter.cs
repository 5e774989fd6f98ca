// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Text;
using InferenceServer.Engine.Diagnostics;
using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace InferenceServer.Observability;

/// <summary>
/// Writes OpenTelemetry's aggregated metrics in the Prometheus text format (0.0.4), with vLLM's exact names for the
/// engine's instruments. Written here rather than taken from OpenTelemetry's Prometheus exporter because the SDK
/// refuses instrument names with a colon (an instrument named <c>vllm:num_requests_running</c> is dropped), so the
/// engine's instruments reach the SDK through a view as <c>vllm.num_requests_running</c>, and that exporter would
/// publish <c>vllm_num_requests_running</c>: not the name dashboards and autoscalers query. Here the <c>vllm.</c>
/// prefix of the engine's meter becomes <c>vllm:</c> again. Every other metric (ASP.NET Core, the runtime) follows
/// the usual OpenTelemetry-to-Prometheus rules: dots to underscores, the unit as a suffix (<c>_seconds</c>,
/// <c>_bytes</c>, <c>_ratio</c>), <c>_total</c> on counters, <c>_bucket</c>/<c>_sum</c>/<c>_count</c> on histograms.
/// <see cref="PrometheusScrapeEndpoint"/> calls <c>Collect</c> on its reader per scrape (a plain exporting reader: it
/// exports only when collected, never on a timer).
/// </summary>
internal sealed class PrometheusTextExporter : BaseExporter<Metric>
{
    /// <summary>The prefix the view gives the engine's instruments, turned back into <c>vllm:</c> here.</summary>
    public const string VllmStreamPrefix = "vllm.";

    private readonly StringBuilder _text = new(16 * 1024);

    /// <summary>The text of the last collection (read under the scrape endpoint's lock).</summary>
    public string LastScrape { get; private set; } = string.Empty;

    /// <inheritdoc />
    public override ExportResult Export(in Batch<Metric> batch)
    {
        _text.Clear();
        foreach (var metric in batch)
        {
            WriteMetric(_text, metric);
        }

        LastScrape = _text.ToString();
        return ExportResult.Success;
    }

    /// <summary>The Prometheus family name of a metric, before any <c>_total</c>/<c>_bucket</c> suffix.</summary>
    internal static string FamilyName(string meterName, string name, string? unit)
    {
        if (meterName == InferenceMetrics.MeterName && name.StartsWith(VllmStreamPrefix, StringComparison.Ordinal))
        {
            // vLLM's names already end in their unit where vLLM's do (…_seconds); the rest have none.
            return "vllm:" + Sanitize(name[VllmStreamPrefix.Length..]);
        }

        var sanitized = Sanitize(name);
        var suffix = UnitSuffix(unit);
        return suffix.Length == 0 || sanitized.EndsWith("_" + suffix, StringComparison.Ordinal) ? sanitized : sanitized + "_" + suffix;
    }

    private static void WriteMetric(StringBuilder text, Metric metric)
    {
        var family = FamilyName(metric.MeterName, metric.Name, metric.Unit);
        var (type, sampleSuffix) = metric.MetricType switch
        {
            MetricType.LongSum or MetricType.DoubleSum => ("counter", family.EndsWith("_total", StringComparison.Ordinal) ? string.Empty : "_total"),
            MetricType.LongGauge or MetricType.DoubleGauge or MetricType.LongSumNonMonotonic or MetricType.DoubleSumNonMonotonic => ("gauge", string.Empty),
            MetricType.Histogram => ("histogram", string.Empty),
            _ => (null, string.Empty),
        };
        if (type is null)
        {
            return;
        }

        var wroteHeader = false;
        foreach (ref readonly var point in metric.GetMetricPoints())
        {
            if (!wroteHeader)
            {
                var name = type == "counter" ? family + sampleSuffix : family;
                text.Append("# HELP ").Append(name).Append(' ').Append(EscapeHelp(metric.Description)).Append('\n');
                text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
                wroteHeader = true;
            }

            var labels = Labels(point);
            switch (metric.MetricType)
            {
                case MetricType.LongSum:
                case MetricType.LongSumNonMonotonic:
                    Sample(text, family + sampleSuffix, labels, null, point.GetSumLong());
                    break;
                case MetricType.DoubleSum:
                case MetricType.DoubleSumNonMonotonic:
                    Sample(text, family + sampleSuffix, labels, null, point.GetSumDouble());
                    break;
                case MetricType.LongGauge:
                    Sample(text, family, labels, null, point.GetGaugeLastValueLong());
                    break;
                case MetricType.DoubleGauge:
                    Sample(text, family, labels, null, point.GetGaugeLastValueDouble());
                    break;
                case MetricType.Histogram:
                    long cumulative = 0;
                    foreach (var bucket in point.GetHistogramBuckets())
                    {
                        cumulative += bucket.BucketCount;
                        Sample(text, family + "_bucket", labels, Format(bucket.ExplicitBound), cumulative);
                    }

                    Sample(text, family + "_sum", labels, null, point.GetHistogramSum());
                    Sample(text, family + "_count", labels, null, point.GetHistogramCount());
                    break;
            }
        }
    }

    private static string Labels(in MetricPoint point)
    {
        var labels = new StringBuilder();
        foreach (var tag in point.Tags)
        {
            labels.Append(labels.Length == 0 ? string.Empty : ",").Append(Sanitize(tag.Key)).Append("=\"").Append(EscapeLabel(Convert.ToString(tag.Value, CultureInfo.InvariantCulture))).Append('"');
        }

        return labels.ToString();
    }

    private static void Sample(StringBuilder text, string name, string labels, string? le, double value)
    {
        text.Append(name);
        if (labels.Length > 0 || le is not null)
        {
            text.Append('{').Append(labels);
            if (le is not null)
            {
                text.Append(labels.Length > 0 ? ",le=\"" : "le=\"").Append(le).Append('"');
            }

            text.Append('}');
        }

        text.Append(' ').Append(Format(value)).Append('\n');
    }

    private static string Format(double value) => double.IsPositiveInfinity(value)
        ? "+Inf"
        : double.IsNegativeInfinity(value) ? "-Inf" : double.IsNaN(value) ? "NaN" : value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Prometheus' metric and label name alphabet: letters, digits and underscores (not first: digits).</summary>
    internal static string Sanitize(string name)
    {
        var builder = new StringBuilder(name.Length);
        foreach (var c in name)
        {
            builder.Append(char.IsAsciiLetterOrDigit(c) || c == '_' ? c : '_');
        }

        if (builder.Length == 0 || char.IsAsciiDigit(builder[0]))
        {
            builder.Insert(0, '_');
        }

        return builder.ToString();
    }

    private static string UnitSuffix(string? unit) => unit switch
    {
        null or "" => string.Empty,
        "s" => "seconds",
        "ms" => "milliseconds",
        "By" => "bytes",
        "1" => "ratio",
        _ when unit.StartsWith('{') => string.Empty,
        _ => Sanitize(unit),
    };

    private static string EscapeLabel(string? value) => (value ?? string.Empty).Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static string EscapeHelp(string? value) => (value ?? string.Empty).Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
}
