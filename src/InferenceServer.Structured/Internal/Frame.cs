// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured.Internal;

/// <summary>
/// An immutable continuation: the state a container (or the root) resumes in once the value inside it ends. Frames
/// are created only through <see cref="JsonMatcher.Intern"/>, so equal frames are the same object.
/// </summary>
internal sealed class Frame
{
    /// <summary>Wraps <paramref name="state"/>.</summary>
    /// <param name="state">The state to resume.</param>
    public Frame(MatchState state) => State = state;

    /// <summary>The state to resume.</summary>
    public MatchState State { get; }
}
