using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using InferenceServer.Engine.KvCache;

namespace InferenceServer.Engine.Tests.KvCache;

public sealed class BlockIdTests
{
    [Fact]
    public void AsInts_IsTheTableItself_NotACopy()
    {
        var kv = new KvCacheManager(8, 4);
        var table = new List<BlockId>();
        Assert.True(kv.TryAllocate(3, table));

        var ints = BlockId.AsInts(CollectionsMarshal.AsSpan(table));
        Assert.Equal(table.Select(static b => (int)b), ints.ToArray());
        Assert.True(Unsafe.AreSame(ref MemoryMarshal.GetReference(ints), ref Unsafe.As<BlockId, int>(ref CollectionsMarshal.AsSpan(table)[0])));
    }

    [Fact]
    public void Conversions_RoundTrip()
    {
        Assert.Equal(7, (int)(BlockId)7);
        Assert.Equal(new BlockId(7), (BlockId)7);
        Assert.NotEqual(new BlockId(7), new BlockId(8));
    }
}
