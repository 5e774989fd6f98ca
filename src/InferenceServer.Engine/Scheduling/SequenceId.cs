// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Scheduling;

/// <summary>
/// A sequence's id: its place in submission order (1, 2, ...; unique per scheduler), which breaks priority ties first come,
/// first served and names the sequence to the runner (<c>ForwardBatch</c>'s row sequence id).
/// </summary>
/// <param name="Value">The submission number.</param>
internal readonly record struct SequenceId(long Value) : IComparable<SequenceId>
{
    /// <summary>The submission number.</summary>
    public static explicit operator long(SequenceId id) => id.Value;

    /// <summary>The sequence submitted <paramref name="value"/>th.</summary>
    public static explicit operator SequenceId(long value) => new(value);

    /// <summary>Earlier submissions first.</summary>
    public int CompareTo(SequenceId other) => Value.CompareTo(other.Value);
}
