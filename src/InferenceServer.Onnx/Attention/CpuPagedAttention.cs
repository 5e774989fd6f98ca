// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>
/// Paged attention on the host's cores. Placeholder of the split branch (one thread, scalar, online softmax) with the
/// contract's signature, until the kernel branch's multi-threaded SIMD implementation is merged.
/// </summary>
internal sealed class CpuPagedAttention : IDisposable
{
    private float[] _accumulator = new float[256];

    /// <summary>Creates the kernel; <paramref name="threads"/> &lt;= 0 means every core.</summary>
    public CpuPagedAttention(int threads)
    {
        Threads = threads <= 0 ? Environment.ProcessorCount : threads;
    }

    /// <summary>Worker threads.</summary>
    public int Threads { get; }

    /// <summary>Attends <paramref name="work"/>'s queries over layer <paramref name="layer"/> of <paramref name="pool"/>.</summary>
    public void Attend(HostKvPool pool, int layer, AttentionWork work, int queryHeads, float scale,
        ReadOnlySpan<float> q, Span<float> output, Span<float> lse, ReadOnlySpan<float> headMask = default)
    {
        var shape = pool.Layers[layer];
        var kw = shape.KeyWidth;
        var vw = shape.ValueWidth;
        var keyRow = shape.KvHeads * kw;
        var valueRow = shape.ValueIsKeyPrefix ? keyRow : shape.KvHeads * vw;
        var valueHeadStride = shape.ValueIsKeyPrefix ? kw : vw;
        var group = queryHeads / shape.KvHeads;
        var keys = pool.Keys(layer);
        var values = pool.Values(layer);
        if (_accumulator.Length < vw)
        {
            _accumulator = new float[vw];
        }

        var acc = _accumulator.AsSpan(0, vw);
        for (var s = 0; s < work.SequenceCount; s++)
        {
            var (kvStart, kvCount, queryOffset, queryCount, firstPosition) = work.Sequence(s);
            var blocks = work.Blocks(s, pool.BlockSize);
            for (var i = 0; i < queryCount; i++)
            {
                var row = queryOffset + i;
                var position = firstPosition + i;
                var visible = Math.Min(kvCount, position - kvStart + 1);
                for (var h = 0; h < queryHeads; h++)
                {
                    var o = output.Slice(((row * queryHeads) + h) * vw, vw);
                    if (visible <= 0 || (!headMask.IsEmpty && headMask[(row * queryHeads) + h] == 0f))
                    {
                        o.Clear();
                        lse[(row * queryHeads) + h] = float.NegativeInfinity;
                        continue;
                    }

                    var kvHead = h / group;
                    var query = q.Slice(((row * queryHeads) + h) * kw, kw);
                    var max = float.NegativeInfinity;
                    var sum = 0f;
                    acc.Clear();
                    for (var j = 0; j < visible; j++)
                    {
                        var slot = (blocks[j / pool.BlockSize] * pool.BlockSize) + (j % pool.BlockSize);
                        var key = keys.Slice((slot * keyRow) + (kvHead * kw), kw);
                        var score = 0f;
                        for (var d = 0; d < kw; d++)
                        {
                            score += query[d] * key[d];
                        }

                        score *= scale;
                        var value = values.Slice((slot * valueRow) + (kvHead * valueHeadStride), vw);
                        if (score > max)
                        {
                            var correction = MathF.Exp(max - score);
                            sum *= correction;
                            for (var d = 0; d < vw; d++)
                            {
                                acc[d] *= correction;
                            }

                            max = score;
                        }

                        var weight = MathF.Exp(score - max);
                        sum += weight;
                        for (var d = 0; d < vw; d++)
                        {
                            acc[d] += weight * value[d];
                        }
                    }

                    for (var d = 0; d < vw; d++)
                    {
                        o[d] = acc[d] / sum;
                    }

                    lse[(row * queryHeads) + h] = max + MathF.Log(sum);
                }
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
    }
}
