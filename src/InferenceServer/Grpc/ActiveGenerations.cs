// Licensed under the MIT License. See LICENSE in the repository root.
using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;

namespace InferenceServer.Grpc;

/// <summary>The running Generate calls by request id, so that <c>Abort(request_id)</c> can cancel one from another call.</summary>
internal sealed class ActiveGenerations
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    /// <summary>Running calls.</summary>
    public int Count => _entries.Count;

    /// <summary>Registers <paramref name="requestId"/>; false when a call with that id is already running.</summary>
    public bool TryAdd(string requestId, CancellationTokenSource lifetime, [NotNullWhen(true)] out Entry? entry)
    {
        var created = new Entry(lifetime);
        if (_entries.TryAdd(requestId, created))
        {
            entry = created;
            return true;
        }

        entry = null;
        return false;
    }

    /// <summary>Removes the registration of <paramref name="entry"/> (not a newer call that reused the id).</summary>
    public void Remove(string requestId, Entry entry) => _entries.TryRemove(new KeyValuePair<string, Entry>(requestId, entry));

    /// <summary>Aborts the call registered as <paramref name="requestId"/>; false when none runs.</summary>
    public bool TryAbort(string requestId)
    {
        if (!_entries.TryGetValue(requestId, out var entry))
        {
            return false;
        }

        entry.Abort();
        return true;
    }

    /// <summary>One running call: its cancellation and whether Abort ended it.</summary>
    internal sealed class Entry(CancellationTokenSource lifetime)
    {
        private int _aborted;

        /// <summary>True once Abort was called for this call.</summary>
        public bool IsAborted => Volatile.Read(ref _aborted) != 0;

        /// <summary>Marks the call aborted and cancels its requests.</summary>
        public void Abort()
        {
            Volatile.Write(ref _aborted, 1);
            try
            {
                lifetime.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // The call ended meanwhile.
            }
        }
    }
}
