// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;

namespace InferenceServer.Engine.KvCache;

/// <summary>
/// A KV block's id: its index in the runner's store, which <see cref="KvCacheManager"/> hands out and sequences keep in
/// their block tables. A value of one <see cref="int"/>, so a table of them is the runner's <c>int</c> block table as it
/// is (<see cref="AsInts"/>, no copy).
/// </summary>
/// <param name="Value">The index, in [0, the pool's block count).</param>
internal readonly record struct BlockId(int Value)
{
    /// <summary>The index.</summary>
    public static explicit operator int(BlockId id) => id.Value;

    /// <summary>The block at index <paramref name="value"/>.</summary>
    public static explicit operator BlockId(int value) => new(value);

    /// <summary><paramref name="table"/> as the <c>int</c> block ids a <c>ForwardBatch</c> row takes, over the same memory.</summary>
    public static ReadOnlySpan<int> AsInts(ReadOnlySpan<BlockId> table) => MemoryMarshal.Cast<BlockId, int>(table);
}
