// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using InferenceServer.Engine.Observation;

namespace InferenceServer.Engine.Diagnostics;

/// <summary>
/// The engine's trace source. Each finished sequence gets three spans under the caller's span (the HTTP or gRPC
/// request's, so a W3C <c>traceparent</c> from the caller carries through): <c>queue</c> (submitted to first
/// scheduled), <c>prefill</c> (first scheduled to first token, with the prompt and cached token counts) and
/// <c>decode</c> (first token to finish, with the generated token count and finish reason).
/// </summary>
public static class EngineTelemetry
{
    /// <summary>The <see cref="ActivitySource"/> name, to enable in OpenTelemetry (<c>AddSource</c>).</summary>
    public const string ActivitySourceName = EngineActivity.SourceName;
}
