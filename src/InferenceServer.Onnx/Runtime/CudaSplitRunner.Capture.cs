// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using InferenceServer.Onnx.Attention;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Onnx.Runtime;

internal sealed partial class CudaSplitRunner
{
    /// <summary>
    /// The local split's greedy decode steps as CUDA graphs (ADR 0011). A step of up to <see cref="MaxBatch"/> one-token
    /// rows is padded to <see cref="CapturedDecode.Bucket"/>'s batch sizes and a power-of-two block-table width, as the
    /// fused runner's <see cref="CapturedDecode"/> pads its steps; each such shape runs <see cref="WarmRuns"/> times as it
    /// is, and then the whole step (every segment run and every layer's attention run, queued by ONNX Runtime on the
    /// split's one stream without synchronizing) is captured from that stream into one graph, which every later step of
    /// the shape launches: one launch and one synchronization a step instead of ~200 kernel launches. ONNX Runtime's own
    /// capture (<c>enable_cuda_graph</c>) is per session and synchronizes after every replay (33 a step on the 1B shape),
    /// which is why the step is captured here instead.
    /// A graph reads the addresses it was captured with: the step runs in a lane of its own whose buffers never move, the
    /// attention backend's padded tables are fixed buffers, <c>attention_metadata</c> is fixed per shape, and padding rows
    /// decode at position 0 into the backend's scratch block. If a capture fails (an operation a capture does not allow),
    /// the step runs uncaptured and so do all later ones (<see cref="Failure"/> says why).
    /// </summary>
    private sealed class CapturedSteps : IDisposable
    {
        /// <summary>Uncaptured runs of a new shape before its capture: ONNX Runtime's arena and kernels meet the shape first.</summary>
        public const int WarmRuns = 2;

        private readonly CudaSplitRunner _runner;
        private readonly Lane _lane;
        private readonly int _maxWidth;
        private readonly IntPtr _stream;
        private readonly Dictionary<(int Rows, int Width), Shape> _shapes = [];

        public CapturedSteps(CudaSplitRunner runner, int maxBatch, int maxWidth)
        {
            _runner = runner;
            MaxBatch = maxBatch;
            _maxWidth = maxWidth;
            _stream = runner._model.Stream;
            _lane = new Lane(runner, CapturedDecode.Bucket(maxBatch));
        }

        /// <summary>Largest captured decode batch.</summary>
        public int MaxBatch { get; }

        /// <summary>Step shapes (padded rows, table width) captured so far.</summary>
        public int Captured { get; private set; }

        /// <summary>Why capturing stopped (the first capture that failed), or null.</summary>
        public string? Failure { get; private set; }

        /// <summary>Whether <paramref name="batch"/> is a step this runs (<see cref="CapturedDecode.Decodes"/>, greedy), unless a capture failed.</summary>
        public bool Fits(ForwardBatch batch) => Failure is null && !batch.DistributionsWanted && CapturedDecode.Decodes(batch, MaxBatch, _maxWidth);

        /// <summary>
        /// Runs <paramref name="batch"/> (which <see cref="Fits"/>) padded, through its shape's graph once captured, with
        /// attention on <paramref name="attention"/>; returns the Stopwatch ticks of the dense segments (the whole step's
        /// host time for a launched graph) and adds the attention runs' to <paramref name="attentionTicks"/>. The argmax is
        /// then read with <see cref="NextTokens"/>, after the stream's work.
        /// </summary>
        public long Run(ForwardBatch batch, CudaAttentionBackend attention, ref long attentionTicks)
        {
            var padded = CapturedDecode.Bucket(batch.RowCount);
            var width = CapturedDecode.TableWidth(batch);
            if (!_shapes.TryGetValue((padded, width), out var shape))
            {
                shape = new Shape(width * attention.BlockSize);
                _shapes.Add((padded, width), shape);
            }

            // The step's inputs go to the fixed buffers (synchronous copies, ordered with the blocking stream) in every case.
            _lane.BeginPadded(batch, padded);
            attention.PlanPadded(batch, padded, width, shape.Bounds.View(2));
            if (shape.Graph == IntPtr.Zero)
            {
                if (shape.Runs < WarmRuns)
                {
                    shape.Runs++;
                    return RunSegments(padded, attention, ref attentionTicks);
                }

                // Capture: the runs queue their kernels on the stream, which records them instead of running them; the
                // step itself is then the graph's first launch, below.
                CudaRuntime.SynchronizeStream(_stream);
                try
                {
                    CudaRuntime.BeginCapture(_stream);
                    _ = RunSegments(padded, attention, ref attentionTicks);
                    shape.Graph = CudaRuntime.EndCapture(_stream);
                    Captured++;
                }
                catch (Exception ex) when (ex is OnnxRuntimeException or InvalidOperationException)
                {
                    CudaRuntime.AbortCapture(_stream);
                    Failure = $"capturing a step of {padded} rows and {width} blocks failed: {ex.Message}";
                    return RunSegments(padded, attention, ref attentionTicks);
                }
            }

            var start = Stopwatch.GetTimestamp();
            CudaRuntime.LaunchGraph(shape.Graph, _stream);
            return Stopwatch.GetTimestamp() - start;
        }

        /// <summary>The argmax of the last step's first <paramref name="rows"/> rows (its padding rows' are dropped).</summary>
        public ReadOnlySpan<long> NextTokens(int rows) => _lane.NextTokens(rows);

        /// <inheritdoc />
        public void Dispose()
        {
            foreach (var shape in _shapes.Values)
            {
                CudaRuntime.DestroyGraph(shape.Graph);
                shape.Bounds.Dispose();
            }

            _lane.Dispose();
        }

        /// <summary>The step's segment and attention runs on the lane's fixed buffers (queued on the stream).</summary>
        private long RunSegments(int padded, CudaAttentionBackend attention, ref long attentionTicks)
        {
            var calls = _runner._model.Attention;
            long dense = 0;
            for (var s = 0; s <= calls.Count; s++)
            {
                if (s > 0)
                {
                    var spec = calls[s - 1];
                    var start = Stopwatch.GetTimestamp();
                    attention.Attend(
                        s - 1,
                        _lane.Q.View(padded, spec.QueryWidth),
                        _lane.K.View(padded, spec.KvHeads * spec.KeyWidth),
                        _lane.V.View(padded, spec.KvHeads * spec.ValueWidth),
                        spec.HeadMasked ? _lane.HeadMask.View(padded, spec.QueryHeads) : null,
                        _lane.Attention.View(padded, spec.OutputWidth),
                        _runner._runOptions);
                    attentionTicks += Stopwatch.GetTimestamp() - start;
                }

                dense += _lane.RunSegment(s);
            }

            return dense;
        }

        /// <summary>A step shape: its <c>attention_metadata</c> (one new token; keys up to the table width's blocks), uncaptured runs so far, and its graph once captured.</summary>
        private sealed class Shape(int keys)
        {
            public PinnedTensorBuffer<int> Bounds { get; } = CapturedDecode.DecodeBounds(keys);

            public int Runs { get; set; }

            public IntPtr Graph { get; set; }
        }
    }
}
