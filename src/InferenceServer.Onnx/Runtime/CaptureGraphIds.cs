// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// CUDA graph ids (ONNX Runtime's <c>gpu_graph_id</c>) of a paged model's session, handed out in ranges, one per runner
/// (<see cref="CapturedDecode"/>): a captured graph reads the addresses of the runner's buffers it was captured over, and
/// the session outlives the runner (tests make several runners of one model), so a later runner must never replay an
/// earlier one's graphs.
/// </summary>
internal static class CaptureGraphIds
{
    /// <summary>Ids in one range: more than any runner's captured shapes (35 batch buckets x a few table widths).</summary>
    public const int RangeSize = 1 << 20;

    /// <summary>
    /// The base of the next range of a model whose ranges so far are counted in <paramref name="ranges"/>: the runner's
    /// ids are base + 1 onward (0, the id of a run that names none, is never one of them).
    /// </summary>
    public static int Claim(ref int ranges)
    {
        var range = Interlocked.Increment(ref ranges) - 1;
        if (range >= (int.MaxValue / RangeSize) - 1)
        {
            throw new InvalidOperationException("CUDA graph ids of this model are used up: too many runners were made");
        }

        return range * RangeSize;
    }
}
