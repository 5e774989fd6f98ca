// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// An MoH layer's queries as a split segment sends them to a memory device (ADR 0005): only the heads each token uses,
/// <c>q_routed</c> [T, active x width] in the segments' 16-bit type, and which heads they are, <c>head_index</c>
/// [T, active]. The host backends take every head's query and a 0/1 head mask; this puts the routed rows back in place.
/// </summary>
internal static class RoutedHeadQueries
{
    /// <summary>
    /// For tokens [<paramref name="first"/>, <paramref name="first"/> + <paramref name="count"/>): widens each token's
    /// <paramref name="active"/> rows of <paramref name="routed"/> (fp16 or bf16 bits, <paramref name="storage"/>) into the
    /// rows of <paramref name="query"/> [T, heads x width] that <paramref name="index"/> names, and sets those heads' entries of
    /// <paramref name="mask"/> [T, heads] to 1 and the others to 0. The other heads' query rows are left as they are: the
    /// mask keeps a backend from reading them.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An index names no head.</exception>
    public static void Expand(
        ReadOnlySpan<ushort> routed, ReadOnlySpan<long> index, int first, int count, int heads, int active, int width, KvStorage storage,
        Span<float> query, Span<float> mask)
    {
        var source = MemoryMarshal.AsBytes(routed);
        for (var t = first; t < first + count; t++)
        {
            var tokenMask = mask.Slice(t * heads, heads);
            tokenMask.Clear();
            for (var a = 0; a < active; a++)
            {
                var head = index[(t * active) + a];
                ArgumentOutOfRangeException.ThrowIfNegative(head, nameof(index));
                ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(head, heads, nameof(index));
                var row = ((t * active) + a) * width;
                KvSimd.Convert(source.Slice(row * sizeof(ushort), width * sizeof(ushort)), query.Slice(((t * heads) + (int)head) * width, width), storage);
                tokenMask[(int)head] = 1f;
            }
        }
    }
}
