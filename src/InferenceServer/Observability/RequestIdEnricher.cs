// Licensed under the MIT License. See LICENSE in the repository root.
using Serilog.Core;
using Serilog.Events;

namespace InferenceServer.Observability;

/// <summary>
/// Adds <c>RequestId</c> (the request's <see cref="HttpContext.TraceIdentifier"/>, which <see cref="Http.RequestIdMiddleware"/> sets
/// from <c>X-Request-Id</c>) to every event logged while handling a request. It replaces the id ASP.NET Core's logging
/// scope captured before the gate ran, so all of a request's lines carry the id the caller and nginx know.
/// Trace and span ids come from Serilog itself (the current <see cref="System.Diagnostics.Activity"/>).
/// </summary>
internal sealed class RequestIdEnricher(IHttpContextAccessor accessor) : ILogEventEnricher
{
    /// <inheritdoc />
    public void Enrich(LogEvent logEvent, ILogEventPropertyFactory propertyFactory)
    {
        if (accessor.HttpContext is { } context)
        {
            logEvent.AddOrUpdateProperty(new LogEventProperty("RequestId", new ScalarValue(context.TraceIdentifier)));
        }
    }
}
