// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured.Internal;

/// <summary>
/// Collects the states a step produces into a caller's buffer, dropping duplicates. When the buffer is full further
/// states are dropped: every state kept is still a real, completable state, so the mask stays sound (it may only
/// allow less than an unbounded matcher would, for pathologically ambiguous schemas).
/// </summary>
internal ref struct StateSink
{
    private readonly Span<MatchState> _buffer;

    /// <summary>Starts an empty sink over <paramref name="buffer"/>.</summary>
    /// <param name="buffer">Where the states go.</param>
    public StateSink(Span<MatchState> buffer)
    {
        _buffer = buffer;
        Count = 0;
    }

    /// <summary>The number of distinct states collected.</summary>
    public int Count { get; private set; }

    /// <summary>Whether the buffer is full (every further state would be dropped).</summary>
    public readonly bool IsFull => Count == _buffer.Length;

    /// <summary>Adds <paramref name="state"/> unless it is already there or the buffer is full.</summary>
    /// <param name="state">The state.</param>
    public void Add(in MatchState state)
    {
        for (int i = 0; i < Count; i++)
        {
            if (_buffer[i].Equals(state))
            {
                return;
            }
        }

        if (Count < _buffer.Length)
        {
            _buffer[Count++] = state;
        }
    }
}
