// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// CUDA graph ids (ONNX Runtime's <c>gpu_graph_id</c>) of a model's sessions, handed out in ranges, one per runner: a
/// captured graph reads the addresses of the runner's buffers it was captured over, and the sessions outlive the runner
/// (tests, and a server that re-creates its runner), so a later runner must never replay an earlier one's graphs.
/// </summary>
internal static class CaptureGraphIds
{
    /// <summary>Ids in one range: more than any runner's captured shapes (35 buckets x a few table widths x layers).</summary>
    public const int RangeSize = 1 << 20;

    /// <summary>The first id of the next range of a model whose ranges so far are counted in <paramref name="ranges"/> (0 is never handed out).</summary>
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
