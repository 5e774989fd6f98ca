// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;
using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Tests.Attention;

/// <summary>
/// <see cref="RoutedHeadQueries.Expand"/>: the routed heads' 16-bit query rows land widened at their heads, the mask is 1
/// exactly there, tokens outside the range are left alone, and an index naming no head is refused.
/// </summary>
public sealed class RoutedHeadQueriesTests
{
    private const int Heads = 4, Active = 3, Width = 8;

    [Theory]
    [InlineData(KvStorage.Float16)]
    [InlineData(KvStorage.BFloat16)]
    public void Expand_PutsEachRoutedRowAtItsHead_AndMarksExactlyThoseHeads(KvStorage storage)
    {
        long[] index = [0, 1, 3, 0, 1, 2, 0, 1, 3];
        var values = Enumerable.Range(0, 3 * Active * Width).Select(static i => (float)(i % 13) - 6f).ToArray();
        var routed = storage == KvStorage.Float16
            ? values.Select(static v => BitConverter.HalfToUInt16Bits((Half)v)).ToArray()
            : values.Select(static v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray();
        var query = Enumerable.Repeat(99f, 3 * Heads * Width).ToArray();
        var mask = Enumerable.Repeat(7f, 3 * Heads).ToArray();

        RoutedHeadQueries.Expand(routed, index, 1, 2, Heads, Active, Width, storage, query, mask);

        // Token 0 is outside the range: untouched.
        Assert.All(query.AsSpan(0, Heads * Width).ToArray(), static v => Assert.Equal(99f, v));
        Assert.All(mask.AsSpan(0, Heads).ToArray(), static v => Assert.Equal(7f, v));
        for (var t = 1; t < 3; t++)
        {
            for (var a = 0; a < Active; a++)
            {
                var head = (int)index[(t * Active) + a];
                Assert.Equal(values.AsSpan(((t * Active) + a) * Width, Width).ToArray(), query.AsSpan(((t * Heads) + head) * Width, Width).ToArray());
            }

            var unused = t == 1 ? 3 : 2;
            Assert.Equal([.. Enumerable.Range(0, Heads).Select(h => h == unused ? 0f : 1f)], mask.AsSpan(t * Heads, Heads).ToArray());
            Assert.All(query.AsSpan(((t * Heads) + unused) * Width, Width).ToArray(), static v => Assert.Equal(99f, v));
        }
    }

    [Theory]
    [InlineData(-1L)]
    [InlineData(4L)]
    public void Expand_AnIndexThatNamesNoHead_IsRefused(long head)
    {
        long[] index = [0, 1, head];
        var routed = new ushort[Active * Width];
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            RoutedHeadQueries.Expand(routed, index, 0, 1, Heads, Active, Width, KvStorage.Float16, new float[Heads * Width], new float[Heads]));
    }
}
