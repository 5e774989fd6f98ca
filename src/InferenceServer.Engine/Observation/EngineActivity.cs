// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using InferenceServer.Engine.Requests;

namespace InferenceServer.Engine.Observation;

/// <summary>
/// The engine's trace source, which the scheduler starts its spans on (<c>Diagnostics.EngineTelemetry</c> publishes its
/// name), and the finish-reason label the spans and metrics share.
/// </summary>
internal static class EngineActivity
{
    /// <summary>The <see cref="ActivitySource"/> name.</summary>
    public const string SourceName = "InferenceServer.Engine";

    /// <summary>The source the scheduler starts its spans on.</summary>
    public static ActivitySource Source { get; } = new(SourceName);

    /// <summary>vLLM's <c>finished_reason</c> label value for <paramref name="reason"/>.</summary>
    public static string FinishReasonLabel(FinishReason reason) => reason switch
    {
        FinishReason.Stop => "stop",
        FinishReason.Length => "length",
        FinishReason.Cancelled => "abort",
        _ => "error",
    };
}
