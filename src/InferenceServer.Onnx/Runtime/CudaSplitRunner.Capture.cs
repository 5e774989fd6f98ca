// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using InferenceServer.Onnx.Attention;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Onnx.Runtime;

internal sealed partial class CudaSplitRunner
{
    /// <summary>
    /// The local split's decode steps as CUDA graphs (ADR 0011): a greedy step of up to <see cref="MaxBatch"/> one-token
    /// rows is padded to <see cref="CapturedDecode.Bucket"/>'s batch sizes and a power-of-two block-table width, as the
    /// fused runner's <see cref="CapturedDecode"/> pads its steps, and every segment session and every layer's attention
    /// call runs with a graph id of that shape, so ONNX Runtime captures each of the step's runs the first times it sees
    /// the shape and replays it from then on. The host then queues one graph launch per run instead of every kernel.
    /// Replays read the addresses captured: the step runs in a lane of its own whose buffers never move, the attention
    /// backend's padded tables are fixed buffers, and padding rows decode at position 0 into the backend's scratch block.
    /// Graph ids, from the runner's range of the model's (<see cref="CaptureGraphIds"/>: the segment sessions outlive the
    /// runner): a segment session's are its batch buckets (1, 2, ...); the attention sessions are shared by the layers of
    /// one shape, so their ids also name the layer (1 + shape x layers + layer).
    /// </summary>
    private sealed class CapturedSteps : IDisposable
    {
        private readonly Lane _lane;
        private readonly int _layers;
        private readonly int _maxWidth;
        private readonly bool _oneStream;
        private readonly int _graphIdBase;
        private readonly Dictionary<int, RunOptions> _segments = [];
        private readonly Dictionary<(int Rows, int Width), (RunOptions[] Attention, PinnedTensorBuffer<int> Bounds)> _shapes = [];

        public CapturedSteps(CudaSplitRunner runner, int maxBatch, int maxWidth)
        {
            MaxBatch = maxBatch;
            _maxWidth = maxWidth;
            _layers = runner._model.Attention.Count;
            _oneStream = runner._model.Stream != IntPtr.Zero;
            _graphIdBase = runner._model.ClaimGraphIds();
            _lane = new Lane(runner, CapturedDecode.Bucket(maxBatch));
        }

        /// <summary>Largest captured decode batch.</summary>
        public int MaxBatch { get; }

        /// <summary>Step shapes (rows, table width) captured or being captured so far.</summary>
        public int Shapes => _shapes.Count;

        /// <summary>Whether <paramref name="batch"/> is a step this captures (<see cref="CapturedDecode.Decodes"/>).</summary>
        public bool Fits(ForwardBatch batch) => !batch.DistributionsWanted && CapturedDecode.Decodes(batch, MaxBatch, _maxWidth);

        /// <summary>
        /// Runs <paramref name="batch"/> (which <see cref="Fits"/>) padded through its shape's graphs, attention on
        /// <paramref name="attention"/>; returns the segments' Stopwatch ticks and adds the attention calls' to
        /// <paramref name="attentionTicks"/>. The argmax is then read with <see cref="NextTokens"/> (after the stream's work).
        /// </summary>
        public long Run(ForwardBatch batch, CudaAttentionBackend attention, IReadOnlyList<AttentionLayerSpec> calls, ref long attentionTicks)
        {
            var maxBlocks = 1;
            for (var r = 0; r < batch.RowCount; r++)
            {
                maxBlocks = Math.Max(maxBlocks, batch.BlockTable(r).Length);
            }

            var padded = CapturedDecode.Bucket(batch.RowCount);
            var width = (int)BitOperations.RoundUpToPowerOf2((uint)maxBlocks);
            var segmentOptions = SegmentOptions(padded);
            var shape = Shape(padded, width, attention.BlockSize);
            _lane.BeginPadded(batch, padded);
            attention.PlanPadded(batch, padded, width, shape.Bounds.View(2));
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
                        shape.Attention[s - 1]);
                    attentionTicks += Stopwatch.GetTimestamp() - start;
                }

                dense += _lane.RunSegment(s, segmentOptions);
            }

            return dense;
        }

        /// <summary>The argmax of the last captured step's first <paramref name="rows"/> rows (its padding rows' are dropped).</summary>
        public ReadOnlySpan<long> NextTokens(int rows) => _lane.NextTokens(rows);

        /// <inheritdoc />
        public void Dispose()
        {
            foreach (var options in _segments.Values)
            {
                options.Dispose();
            }

            foreach (var (attention, bounds) in _shapes.Values)
            {
                foreach (var options in attention)
                {
                    options.Dispose();
                }

                bounds.Dispose();
            }

            _lane.Dispose();
        }

        private RunOptions SegmentOptions(int padded)
        {
            if (!_segments.TryGetValue(padded, out var options))
            {
                options = Options(_graphIdBase + CaptureGraphIds.Segment(padded, MaxBatch));
                _segments.Add(padded, options);
            }

            return options;
        }

        private (RunOptions[] Attention, PinnedTensorBuffer<int> Bounds) Shape(int padded, int width, int blockSize)
        {
            if (!_shapes.TryGetValue((padded, width), out var shape))
            {
                var index = _shapes.Count;
                var attention = new RunOptions[_layers];
                for (var layer = 0; layer < _layers; layer++)
                {
                    attention[layer] = Options(_graphIdBase + CaptureGraphIds.Attention(index, layer, _layers));
                }

                // attention_metadata, fixed per shape: one new token per row, keys up to the table width's blocks.
                var bounds = new PinnedTensorBuffer<int>(2);
                var values = bounds.Reserve(2);
                values[0] = 1;
                values[1] = width * blockSize;
                shape = (attention, bounds);
                _shapes.Add((padded, width), shape);
            }

            return shape;
        }

        private RunOptions Options(int graphId)
        {
            var options = new RunOptions();
            options.AddRunConfigEntry("gpu_graph_id", graphId.ToString(CultureInfo.InvariantCulture));
            if (_oneStream)
            {
                options.AddRunConfigEntry("disable_synchronize_execution_providers", "1");
            }

            return options;
        }
    }
}
