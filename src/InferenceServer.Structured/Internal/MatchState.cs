// Licensed under the MIT License. See LICENSE in the repository root.

using System.Runtime.CompilerServices;

namespace InferenceServer.Structured.Internal;

/// <summary>
/// One deterministic matcher state: the node being matched, its phase and three phase-specific integers, over an
/// immutable stack of continuations (<paramref name="Parent"/>). Frames are interned per matcher, so two states are
/// equal exactly when their fields are (the parent compared by reference), and copying a state copies 32 bytes
/// whatever the nesting depth.
/// </summary>
/// <param name="Parent">What to resume when this value ends; null only for the root node's own state.</param>
/// <param name="Node">The index of the grammar node.</param>
/// <param name="Phase">Where in the node (the constants of <see cref="Phases"/>).</param>
/// <param name="A">Object: the next declared property; array: items so far; string: code points so far; literal: trie node.</param>
/// <param name="B">Object: key trie node or the value's node; string: escape or UTF-8 detail.</param>
/// <param name="C">Whitespace characters in the current run.</param>
internal readonly record struct MatchState(Frame? Parent, int Node, int Phase, int A, int B, int C)
{
    /// <summary>Field-wise equality, the parent by reference (frames are interned).</summary>
    /// <param name="other">The other state.</param>
    public bool Equals(MatchState other)
        => ReferenceEquals(Parent, other.Parent) && Node == other.Node && Phase == other.Phase
            && A == other.A && B == other.B && C == other.C;

    /// <inheritdoc />
    public override int GetHashCode()
        => HashCode.Combine(RuntimeHelpers.GetHashCode(Parent), Node, Phase, A, B, C);
}
