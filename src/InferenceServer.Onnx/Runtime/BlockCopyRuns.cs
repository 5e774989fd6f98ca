// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>One run of block copies: <see cref="Count"/> consecutive device blocks from <see cref="FirstBlock"/>, whose host bytes start at <see cref="Host"/> and lie <see cref="HostPitch"/> bytes apart.</summary>
/// <param name="FirstBlock">The run's first device block.</param>
/// <param name="Host">The first block's host bytes.</param>
/// <param name="HostPitch">Bytes from one block's host bytes to the next (0 for a run of one).</param>
/// <param name="Count">Blocks in the run.</param>
internal readonly record struct BlockCopyRun(int FirstBlock, IntPtr Host, long HostPitch, int Count);

/// <summary>
/// Groups queued block copies, in the order asked, into runs (ADR 0009): consecutive requests whose device blocks ascend by
/// one and whose host spans lie a constant pitch apart (at least a block's bytes, so they do not overlap) become one run,
/// copied per pool with one pitched copy (<c>cudaMemcpy2DAsync</c>) instead of one copy per block. The host tier hands out
/// its slots and the KV-cache manager its blocks in ascending order while nothing is recycled, so a returning history is
/// mostly one run.
/// </summary>
internal static class BlockCopyRuns
{
    /// <summary>Appends the runs of <paramref name="copies"/> (device block, host bytes) to <paramref name="runs"/>, in order.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="blockBytes"/> is not positive.</exception>
    public static void Plan(ReadOnlySpan<(int Block, IntPtr Host)> copies, long blockBytes, List<BlockCopyRun> runs)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockBytes);
        var i = 0;
        while (i < copies.Length)
        {
            var (first, host) = copies[i];
            var count = 1;
            long pitch = 0;
            if (i + 1 < copies.Length)
            {
                var candidate = (long)copies[i + 1].Host - (long)host;
                if (copies[i + 1].Block == first + 1 && candidate >= blockBytes)
                {
                    pitch = candidate;
                    count = 2;
                    while (i + count < copies.Length
                        && copies[i + count].Block == first + count
                        && (long)copies[i + count].Host - (long)host == pitch * count)
                    {
                        count++;
                    }
                }
            }

            runs.Add(new BlockCopyRun(first, host, pitch, count));
            i += count;
        }
    }
}
