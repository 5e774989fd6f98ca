// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The parts of a split step (ADR 0005) that <see cref="SplitRunner"/> (CPU segments) and <see cref="CudaSplitRunner"/>
/// (CUDA segments) share: packing the rows' tokens and positions, and one attention call over the host backends with
/// the log-sum-exp merge of rows spread over several. Allocation-free.
/// </summary>
internal static class SplitStep
{
    /// <summary>
    /// Writes every row's new tokens and their absolute positions, packed row after row, into <paramref name="ids"/> and
    /// <paramref name="positions"/>; checks each row's block table covers its tokens.
    /// </summary>
    /// <exception cref="ArgumentException">A row's block table is too short for <paramref name="blockSize"/>.</exception>
    public static void Pack(ForwardBatch batch, int blockSize, Span<long> ids, Span<long> positions)
    {
        var offset = 0;
        for (var r = 0; r < batch.RowCount; r++)
        {
            var rowTokens = batch.Tokens(r);
            var past = batch.PastLength(r);
            var needed = (past + rowTokens.Length + blockSize - 1) / blockSize;
            if (batch.BlockTable(r).Length < needed)
            {
                throw new ArgumentException($"Row {r} holds {past + rowTokens.Length} tokens but its block table has {batch.BlockTable(r).Length} blocks of {blockSize}.", nameof(batch));
            }

            for (var t = 0; t < rowTokens.Length; t++)
            {
                ids[offset + t] = rowTokens[t];
                positions[offset + t] = past + t;
            }

            offset += rowTokens.Length;
        }
    }

    /// <summary>
    /// Bytes one attention call moves between the dense segments and a memory device for <paramref name="tokens"/> tokens:
    /// q, k and v out and the output back (ADR 0005's (2 + 2/G) x hidden for GQA), <paramref name="elementBytes"/> each.
    /// </summary>
    public static long OffloadBytes(AttentionLayerSpec spec, int tokens, int elementBytes) =>
        (long)tokens * ((2 * spec.QueryWidth) + (spec.KvHeads * (spec.KeyWidth + spec.ValueWidth))) * elementBytes;

    /// <summary>Tells <paramref name="observer"/> (if any) the step's offloaded bytes and each device's attention time (<paramref name="ticks"/>, in <paramref name="devices"/>' order).</summary>
    public static void Report(IAttentionObserver? observer, long offloadBytes, IReadOnlyList<string> devices, ReadOnlySpan<long> ticks)
    {
        if (observer is null)
        {
            return;
        }

        observer.AttentionOffloaded(offloadBytes);
        for (var b = 0; b < ticks.Length; b++)
        {
            if (ticks[b] > 0)
            {
                observer.AttentionStep(devices[b], (double)ticks[b] / Stopwatch.Frequency);
            }
        }
    }

    /// <summary>
    /// Cuts <paramref name="batch"/> into <paramref name="halves"/> at <see cref="MicroBatches.SplitRow"/> (keeping
    /// <paramref name="lastSplit"/>, the previous step's cut, while it stays near half), and updates it.
    /// </summary>
    public static void Cut(ForwardBatch batch, ref int lastSplit, ForwardBatch[] halves)
    {
        lastSplit = MicroBatches.SplitRow(batch, lastSplit);
        MicroBatches.Split(batch, lastSplit, halves[0], halves[1]);
    }

    /// <summary>
    /// Two micro-batches in ping-pong (ADR 0010): each lane begins its half of the step (<paramref name="halves"/>); then
    /// per segment s and lane l, wait for lane l's attention call s - 1 on <paramref name="worker"/> and hand its output
    /// back, run segment s of lane l, hand its q, k, v over and start its attention call s. While the worker attends for
    /// one lane, this thread runs the other's segment. The lanes' attention ticks are added to
    /// <paramref name="attentionTicks"/>; returns this thread's ticks in segments. On an exception the worker is drained
    /// first, so that nothing reads a lane's buffers after the step unwinds.
    /// </summary>
    public static long RunOverlapped<TLane>(TLane[] lanes, ForwardBatch[] halves, int calls, OverlapWorker worker, long[] attentionTicks)
        where TLane : class, IStepLane
    {
        for (var l = 0; l < lanes.Length; l++)
        {
            lanes[l].Begin(halves[l]);
        }

        long dense = 0;
        try
        {
            for (var s = 0; s <= calls; s++)
            {
                for (var l = 0; l < lanes.Length; l++)
                {
                    var lane = lanes[l];
                    if (s > 0)
                    {
                        worker.Wait(l);
                        lane.ReturnFromHost(s - 1);
                    }

                    dense += lane.RunSegment(s);
                    if (s < calls)
                    {
                        lane.SendToHost(s);
                        worker.Start(l, s);
                    }
                }
            }
        }
        catch
        {
            worker.Drain();
            throw;
        }

        foreach (var lane in lanes)
        {
            lane.AddAttentionTicks(attentionTicks);
        }

        return dense;
    }

    /// <summary>Copies the two lanes' logit rows, the first half's then the second's, into <paramref name="logits"/>.</summary>
    public static void CopyLogits<TLane>(TLane[] lanes, ForwardBatch[] halves, Span<float> logits, int vocab)
        where TLane : class, IStepLane
    {
        var first = halves[0].LogitRowCount * vocab;
        lanes[0].Logits(first).CopyTo(logits);
        lanes[1].Logits(halves[1].LogitRowCount * vocab).CopyTo(logits[first..]);
    }

    /// <summary>
    /// The end of a split step: feeds <paramref name="policy"/> the step's dense and attention seconds and tells
    /// <paramref name="observer"/> the offloaded bytes, each device's attention time and the step's timing (the
    /// attention busy time is <paramref name="worker"/>'s when <paramref name="overlapped"/>).
    /// </summary>
    public static void Finish(
        OverlapPolicy policy, IAttentionObserver? observer, IReadOnlyList<string> devices, ReadOnlySpan<long> attentionTicks, long offloadBytes,
        bool overlapped, long stepStart, long denseTicks, OverlapWorker? worker)
    {
        long attention = 0;
        foreach (var ticks in attentionTicks)
        {
            attention += ticks;
        }

        policy.Record((double)denseTicks / Stopwatch.Frequency, (double)attention / Stopwatch.Frequency);
        Report(observer, offloadBytes, devices, attentionTicks);
        ReportOverlap(observer, overlapped, Stopwatch.GetTimestamp() - stepStart, denseTicks, overlapped ? worker!.TakeBusyTicks() : attention);
    }

    /// <summary>
    /// Tells <paramref name="observer"/> (if any) one step's timing of the split (ADR 0010): its wall time, the step
    /// thread's busy time in dense segments, and the host attention's busy time (the overlap worker's when
    /// <paramref name="overlapped"/>), all Stopwatch ticks.
    /// </summary>
    public static void ReportOverlap(IAttentionObserver? observer, bool overlapped, long stepTicks, long denseTicks, long attentionTicks) =>
        observer?.SplitStep(overlapped, (double)stepTicks / Stopwatch.Frequency, (double)denseTicks / Stopwatch.Frequency, (double)attentionTicks / Stopwatch.Frequency);

    /// <summary>
    /// Attention call <paramref name="call"/> on every backend that holds some of the step's KV: the first writes
    /// <paramref name="output"/> and <paramref name="lse"/> (unless <paramref name="accumulate"/>: they already hold a
    /// part, the GPU's), each further one its part into <paramref name="partOutput"/> and <paramref name="partLse"/>,
    /// merged in exactly by log-sum-exp. Adds each backend's Stopwatch ticks to <paramref name="ticks"/>.
    /// </summary>
    public static void Attend(
        IAttentionBackend[] backends, int call, AttentionLayerSpec spec, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<float> mask,
        Span<float> output, Span<float> lse, float[] partOutput, float[] partLse, Span<long> ticks, bool accumulate = false)
    {
        var first = !accumulate;
        for (var b = 0; b < backends.Length; b++)
        {
            var backend = backends[b];
            if (!backend.HasWork)
            {
                continue;
            }

            var start = Stopwatch.GetTimestamp();
            if (first)
            {
                backend.Attend(call, spec, q, k, v, mask, output, lse);
                first = false;
            }
            else
            {
                // Another part of the same rows' KV: merged exactly by log-sum-exp.
                var otherOutput = partOutput.AsSpan(0, output.Length);
                var otherLse = partLse.AsSpan(0, lse.Length);
                backend.Attend(call, spec, q, k, v, mask, otherOutput, otherLse);
                AttentionMerge.MergeInto(output, lse, otherOutput, otherLse, spec.QueryHeads, spec.ValueWidth);
            }

            ticks[b] += Stopwatch.GetTimestamp() - start;
        }
    }
}
