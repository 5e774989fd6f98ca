// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Diagnostics;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Serilog;
using Serilog.Events;
using Serilog.Formatting.Compact;

namespace InferenceServer.Observability;

/// <summary>
/// The server's logging (Serilog), tracing and metrics (OpenTelemetry) registration, which the composition root calls
/// once at start.
/// </summary>
internal static class ServerTelemetry
{
    /// <summary>The service name when <c>OTEL_SERVICE_NAME</c> is not set.</summary>
    public const string ServiceName = "inference-server";

    private const string TextTemplate = "[{Timestamp:HH:mm:ss.fff} {Level:u3}] {SourceContext}: {Message:lj} {RequestId} {TraceId}{NewLine}{Exception}";

    /// <summary>
    /// Serilog to stdout, text or compact JSON. Levels come from the usual <c>Logging:LogLevel</c> section
    /// (<c>Default</c> and per-category overrides), so <c>--Logging:LogLevel:Default Warning</c> works as before.
    /// </summary>
    /// <param name="builder">The application being built.</param>
    /// <param name="format"><c>--log-format</c>: text lines or compact JSON.</param>
    public static void AddLogging(WebApplicationBuilder builder, LogFormat format)
    {
        builder.Services.AddHttpContextAccessor();
        builder.Services.AddSerilog((services, configuration) =>
        {
            var levels = builder.Configuration.GetSection("Logging:LogLevel");
            configuration.MinimumLevel.Is(ParseLevel(levels["Default"]) ?? LogEventLevel.Information);

            // Without appsettings.json (started from another folder) ASP.NET Core's per-request lines stay off: the
            // server writes its own line per finished request.
            var overrides = new Dictionary<string, LogEventLevel>(StringComparer.Ordinal) { ["Microsoft.AspNetCore"] = LogEventLevel.Warning };
            foreach (var category in levels.GetChildren())
            {
                if (category.Key != "Default" && ParseLevel(category.Value) is { } level)
                {
                    overrides[category.Key] = level;
                }
            }

            foreach (var (category, level) in overrides)
            {
                configuration.MinimumLevel.Override(category, level);
            }

            configuration.Enrich.FromLogContext().Enrich.With(new RequestIdEnricher(services.GetRequiredService<IHttpContextAccessor>()));
            if (format == LogFormat.Json)
            {
                configuration.WriteTo.Console(new RenderedCompactJsonFormatter());
            }
            else
            {
                configuration.WriteTo.Console(outputTemplate: TextTemplate, formatProvider: System.Globalization.CultureInfo.InvariantCulture);
            }
        });
    }

    private static LogEventLevel? ParseLevel(string? level) => level switch
    {
        "Trace" => LogEventLevel.Verbose,
        "Debug" => LogEventLevel.Debug,
        "Information" => LogEventLevel.Information,
        "Warning" => LogEventLevel.Warning,
        "Error" => LogEventLevel.Error,
        "Critical" or "None" => LogEventLevel.Fatal,
        _ => null,
    };

    /// <summary>
    /// Traces: ASP.NET Core (HTTP and gRPC server spans, W3C <c>traceparent</c> honoured) and the engine's queue, prefill
    /// and decode spans. Metrics: the engine's vLLM-named instruments, ASP.NET Core's and the runtime's, scraped at
    /// <c>/metrics</c>. Both also go to an OTLP collector when the standard <c>OTEL_EXPORTER_OTLP_*</c> variables name one.
    /// </summary>
    public static void AddTelemetry(WebApplicationBuilder builder)
    {
        var scrape = new PrometheusScrapeEndpoint();
        builder.Services.AddSingleton(scrape);
        var telemetry = builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource =>
            {
                if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_SERVICE_NAME")))
                {
                    resource.AddService(ServiceName);
                }
            })
            .WithTracing(tracing => tracing
                .AddAspNetCoreInstrumentation(aspNetCore => aspNetCore.Filter = static context => !IsOperationsPath(context.Request.Path))
                .AddSource(EngineTelemetry.ActivitySourceName))
            .WithMetrics(metrics => metrics
                .AddMeter(InferenceMetrics.MeterName)
                // The SDK drops instrument names with a colon; the view passes vLLM's names through as vllm.* (see PrometheusTextExporter).
                .AddView(static instrument => instrument.Name.StartsWith("vllm:", StringComparison.Ordinal)
                    ? new MetricStreamConfiguration { Name = PrometheusTextExporter.VllmStreamPrefix + instrument.Name["vllm:".Length..] }
                    : null)
                .AddAspNetCoreInstrumentation()
                .AddRuntimeInstrumentation()
                .AddReader(scrape.Reader));
        if (HasOtlpEndpoint())
        {
            telemetry.UseOtlpExporter();
        }
    }

    private static bool IsOperationsPath(PathString path)
        => path.StartsWithSegments("/health", StringComparison.Ordinal) || path.StartsWithSegments("/metrics", StringComparison.Ordinal);

    private static bool HasOtlpEndpoint()
        => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT"))
            || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
            || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"));
}
