// Licensed under the MIT License. See LICENSE in the repository root.
using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;

namespace InferenceServer.Grpc;

/// <summary>
/// The running Generate calls by scope and request id, so that <c>Abort(request_id)</c> can cancel one from another call.
/// A scope (<see cref="GrpcCaller"/>) sees only its own ids: a lookup never says whether another scope runs an id.
/// </summary>
internal sealed class ActiveGenerations
{
    private readonly ConcurrentDictionary<(string Scope, string RequestId), Entry> _entries = new();

    /// <summary>Running calls.</summary>
    public int Count => _entries.Count;

    /// <summary>Registers <paramref name="requestId"/> in <paramref name="scope"/>; false when that scope already runs a call with that id.</summary>
    public bool TryAdd(string scope, string requestId, CancellationTokenSource lifetime, [NotNullWhen(true)] out Entry? entry)
    {
        var created = new Entry(scope, requestId, lifetime);
        if (_entries.TryAdd((scope, requestId), created))
        {
            entry = created;
            return true;
        }

        entry = null;
        return false;
    }

    /// <summary>Removes the registration of <paramref name="entry"/> (not a newer call that reused the id).</summary>
    public void Remove(Entry entry) => _entries.TryRemove(new KeyValuePair<(string, string), Entry>((entry.Scope, entry.RequestId), entry));

    /// <summary>Aborts the call registered as <paramref name="requestId"/> in <paramref name="scope"/>; false when none runs there.</summary>
    public bool TryAbort(string scope, string requestId)
    {
        if (!_entries.TryGetValue((scope, requestId), out var entry))
        {
            return false;
        }

        entry.Abort();
        return true;
    }

    /// <summary>One running call: its scope, id, cancellation and whether Abort ended it.</summary>
    internal sealed class Entry(string scope, string requestId, CancellationTokenSource lifetime)
    {
        private int _aborted;

        /// <summary>The scope the id was registered in.</summary>
        public string Scope { get; } = scope;

        /// <summary>The request id.</summary>
        public string RequestId { get; } = requestId;

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
