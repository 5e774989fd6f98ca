// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Text;

/// <summary>
/// Finds stop strings in a stream of text. Text is released only once it cannot be the start of a stop string, so a
/// stop string split across tokens is never emitted in part; the stop string itself is never emitted.
/// </summary>
internal sealed class StopStringMatcher
{
    private readonly IReadOnlyList<string> _stops;
    private string _pending = string.Empty;

    /// <summary>Creates a matcher for <paramref name="stops"/> (empty strings are ignored).</summary>
    public StopStringMatcher(IReadOnlyList<string> stops) => _stops = stops;

    /// <summary>True once a stop string was found.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds <paramref name="text"/> and returns what can be released now.</summary>
    public string Push(string text)
    {
        if (Stopped)
        {
            return string.Empty;
        }

        if (_stops.Count == 0)
        {
            return text;
        }

        if (text.Length == 0 && _pending.Length == 0)
        {
            return string.Empty;
        }

        var pending = _pending.Length == 0 ? text : string.Concat(_pending, text);
        var earliest = -1;
        foreach (var stop in _stops)
        {
            if (stop.Length == 0)
            {
                continue;
            }

            var index = pending.IndexOf(stop, StringComparison.Ordinal);
            if (index >= 0 && (earliest < 0 || index < earliest))
            {
                earliest = index;
            }
        }

        if (earliest >= 0)
        {
            Stopped = true;
            _pending = string.Empty;
            return pending[..earliest];
        }

        var hold = LongestStopPrefixSuffix(pending);
        _pending = pending[(pending.Length - hold)..];
        return pending[..(pending.Length - hold)];
    }

    /// <summary>Releases whatever is held back (the stream ended without a stop string).</summary>
    public string Flush()
    {
        var rest = _pending;
        _pending = string.Empty;
        return Stopped ? string.Empty : rest;
    }

    private int LongestStopPrefixSuffix(string text)
    {
        var longest = 0;
        foreach (var stop in _stops)
        {
            var max = Math.Min(stop.Length - 1, text.Length);
            for (var length = max; length > longest; length--)
            {
                if (text.AsSpan(text.Length - length).SequenceEqual(stop.AsSpan(0, length)))
                {
                    longest = length;
                    break;
                }
            }
        }

        return longest;
    }
}
