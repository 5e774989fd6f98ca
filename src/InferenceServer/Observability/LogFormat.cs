// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Observability;

/// <summary>How log lines are written to stdout.</summary>
internal enum LogFormat
{
    /// <summary>One readable line per event, with the request id and trace id.</summary>
    Text,

    /// <summary>Compact JSON (CLEF: <c>@t</c>, <c>@l</c>, <c>@m</c>, <c>@tr</c>, <c>@sp</c> and the properties), one object per line.</summary>
    Json,
}
