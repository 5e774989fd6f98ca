// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured.Internal;

/// <summary>What one byte does to a string.</summary>
internal enum StepResult
{
    /// <summary>The byte cannot come next.</summary>
    Dead,

    /// <summary>The byte was consumed and the string goes on.</summary>
    Continue,

    /// <summary>The byte was the closing quote.</summary>
    Close,
}
