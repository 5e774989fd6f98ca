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

    /// <summary>
    /// A split segment session's graph id (within a runner's range) for a captured step of <paramref name="padded"/> rows:
    /// the bucket's place among <see cref="CapturedDecode.Buckets"/> of <paramref name="maxBatch"/>, from 1.
    /// </summary>
    public static int Segment(int padded, int maxBatch)
    {
        var buckets = CapturedDecode.Buckets(maxBatch);
        for (var i = 0; i < buckets.Count; i++)
        {
            if (buckets[i] == padded)
            {
                return i + 1;
            }
        }

        throw new ArgumentOutOfRangeException(nameof(padded), $"{padded} rows is not a batch bucket of {maxBatch}");
    }

    /// <summary>
    /// An attention session's graph id (within a runner's range) for layer <paramref name="layer"/> of <paramref name="layers"/>
    /// in the <paramref name="shape"/>-th step shape the runner captured: the layers of one shape share a session, so the
    /// id names the layer too.
    /// </summary>
    public static int Attention(int shape, int layer, int layers)
    {
        var id = 1 + ((long)shape * layers) + layer;
        return id < RangeSize ? (int)id : throw new InvalidOperationException($"step shape {shape} of {layers} layers needs more CUDA graph ids than a range has");
    }
}
