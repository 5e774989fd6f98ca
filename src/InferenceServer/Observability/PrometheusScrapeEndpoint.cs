// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text;
using OpenTelemetry.Metrics;

namespace InferenceServer.Observability;

/// <summary>
/// <c>GET /metrics</c>: collects the metrics now (one scrape at a time) and answers with
/// <see cref="PrometheusTextExporter"/>'s text and the <c>process_*</c> series (<see cref="ProcessMetricsWriter"/>),
/// <c>text/plain; version=0.0.4</c>.
/// </summary>
internal sealed class PrometheusScrapeEndpoint : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>Creates the exporter and the reader that OpenTelemetry's meter provider collects into.</summary>
    public PrometheusScrapeEndpoint()
    {
        Exporter = new PrometheusTextExporter();
        Reader = new BaseExportingMetricReader(Exporter) { TemporalityPreference = MetricReaderTemporalityPreference.Cumulative };
    }

    /// <summary>The exporter that formats each collection.</summary>
    public PrometheusTextExporter Exporter { get; }

    /// <summary>The reader to add to the meter provider.</summary>
    public MetricReader Reader { get; }

    /// <summary>Handles one scrape.</summary>
    public async Task HandleAsync(HttpContext context)
    {
        string text;
        await _gate.WaitAsync(context.RequestAborted).ConfigureAwait(false);
        try
        {
            if (!Reader.Collect(timeoutMilliseconds: 10_000))
            {
                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                return;
            }

            var scrape = new StringBuilder(Exporter.LastScrape, Exporter.LastScrape.Length + 1024);
            ProcessMetricsWriter.Write(scrape);
            text = scrape.ToString();
        }
        finally
        {
            _gate.Release();
        }

        context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
        await context.Response.WriteAsync(text, context.RequestAborted).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void Dispose() => _gate.Dispose();
}
