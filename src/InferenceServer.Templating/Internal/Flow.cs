// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>How a statement ended: normally, or by <c>break</c>/<c>continue</c> that the enclosing loop handles.</summary>
internal enum Flow
{
    /// <summary>Go on with the next statement.</summary>
    Normal,

    /// <summary>Leave the innermost loop.</summary>
    Break,

    /// <summary>Go to the next iteration of the innermost loop.</summary>
    Continue,
}
