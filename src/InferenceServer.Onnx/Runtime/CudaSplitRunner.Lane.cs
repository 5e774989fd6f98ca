// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Attention;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Runtime;

internal sealed partial class CudaSplitRunner
{
    /// <summary>
    /// One micro-batch's state (ADR 0010): its device buffers (packed inputs, residual stream, RoPE rows, q, k, v,
    /// attention output) at fixed addresses, its bindings of the segment sessions, its pinned logits, the fp32 host copies
    /// its host attention works on, and its host backends' plans (the second lane's share the first's pages). The CUDA
    /// copies (<see cref="SendToHost"/>, <see cref="ReturnFromHost"/>) run on the step's thread; <see cref="AttendOnHost"/> touches
    /// only host memory, so the overlap worker may run it. A captured lane (<c>fixedTokens</c> above 0, ADR 0011) has every
    /// buffer at its full size from the start, so no address moves under a captured graph, and its head writes the argmax
    /// and the logits to device buffers (an output bound to host memory is copied by ONNX Runtime after the run, outside
    /// what the stream records).
    /// </summary>
    private sealed class Lane : IStepLane, IDisposable
    {
        private readonly CudaSplitRunner _runner;
        private readonly SplitDecoderModel _model;
        private readonly StepBinding[] _bindings;
        private readonly DeviceTensorBuffer<long> _ids;
        private readonly DeviceTensorBuffer<long> _positions;
        private readonly DeviceTensorBuffer<long> _logitsIndices;
        private readonly DeviceTensorBuffer<ushort> _hiddenA;
        private readonly DeviceTensorBuffer<ushort> _hiddenB;
        private readonly DeviceTensorBuffer<ushort> _ropeCos;
        private readonly DeviceTensorBuffer<ushort> _ropeSin;
        private readonly PinnedTensorBuffer<float> _logits;
        private readonly PinnedTensorBuffer<long>? _nextTokens;
        private readonly DeviceTensorBuffer<long>? _deviceNext;
        private readonly DeviceTensorBuffer<float>? _deviceLogits;
        private readonly SegmentTensors _io = null!;
        private IAttentionBackend[] _backends = [];
        private long[] _ticks = [];
        private float[] _qFloat = [];
        private float[] _kFloat = [];
        private float[] _vFloat = [];
        private float[] _output = [];
        private float[] _lse = [];
        private float[] _partOutput = [];
        private float[] _partLse = [];
        private readonly List<(int Offset, int Count)> _fresh = [];
        private readonly List<(int Offset, int Count)> _rest = [];
        private readonly List<(int Offset, int Count)> _all = [(0, 0)];
        private readonly DeviceTensorBuffer<ushort>? _routedQueries;
        private readonly DeviceTensorBuffer<long>? _headIndex;
        private float[] _mask = [];
        private DeviceTensorBuffer<ushort> _hidden;
        private DeviceTensorBuffer<ushort> _next;
        private int _logitRows;
        private bool _distributions = true;

        /// <summary>
        /// Creates the lane's buffers and bindings; with <paramref name="fixedTokens"/> above 0, a captured lane whose
        /// buffers hold that many tokens from the start and never grow.
        /// </summary>
        public Lane(CudaSplitRunner runner, int fixedTokens = 0)
        {
            _runner = runner;
            _model = runner._model;
            var device = _model.DeviceId;
            var memory = runner._deviceMemory;
            var type = _model.SegmentType;
            _bindings = new StepBinding[_model.Segments.Count];
            try
            {
                _ids = new DeviceTensorBuffer<long>(device, memory, TensorElementType.Int64, 256);
                _positions = new DeviceTensorBuffer<long>(device, memory, TensorElementType.Int64, 256);
                _logitsIndices = new DeviceTensorBuffer<long>(device, memory, TensorElementType.Int64, 64);
                _hiddenA = new DeviceTensorBuffer<ushort>(device, memory, type, 1024);
                _hiddenB = new DeviceTensorBuffer<ushort>(device, memory, type, 1024);
                Q = new DeviceTensorBuffer<ushort>(device, memory, type, 1024);
                K = new DeviceTensorBuffer<ushort>(device, memory, type, 1024);
                V = new DeviceTensorBuffer<ushort>(device, memory, type, 1024);
                _ropeCos = new DeviceTensorBuffer<ushort>(device, memory, type, 256);
                _ropeSin = new DeviceTensorBuffer<ushort>(device, memory, type, 256);
                Attention = new DeviceTensorBuffer<ushort>(device, memory, type, 1024);
                HeadMask = new DeviceTensorBuffer<float>(device, memory, TensorElementType.Float, 64);
                if (_model.RoutedQueries)
                {
                    _routedQueries = new DeviceTensorBuffer<ushort>(device, memory, type, 1024);
                    _headIndex = new DeviceTensorBuffer<long>(device, memory, TensorElementType.Int64, 64);
                }

                _logits = new PinnedTensorBuffer<float>(_model.Spec.VocabularySize);
                for (var s = 0; s < _bindings.Length; s++)
                {
                    _bindings[s] = new StepBinding(_model.Segments[s], synchronize: _model.Stream == IntPtr.Zero);
                }

                if (fixedTokens > 0)
                {
                    _deviceNext = new DeviceTensorBuffer<long>(device, memory, TensorElementType.Int64, fixedTokens);
                    _deviceLogits = new DeviceTensorBuffer<float>(device, memory, TensorElementType.Float, fixedTokens * _model.Spec.VocabularySize);
                    _io = new SegmentTensors(_ids, _positions, _logitsIndices, _ropeCos, _ropeSin, Q, K, V, Attention, HeadMask, _deviceLogits, _deviceNext, memory, _routedQueries, _headIndex, logitsOnDevice: true);
                    _ids.Reserve(fixedTokens);
                    _positions.Reserve(fixedTokens);
                    _logitsIndices.Reserve(fixedTokens);
                    ReserveDevice(fixedTokens);
                }
                else
                {
                    _nextTokens = _model.HasNextTokens ? new PinnedTensorBuffer<long>(256) : null;
                    _io = new SegmentTensors(_ids, _positions, _logitsIndices, _ropeCos, _ropeSin, Q, K, V, Attention, HeadMask, _logits, _nextTokens, memory, _routedQueries, _headIndex);
                }
            }
            catch
            {
                Dispose();
                throw;
            }

            _hidden = _hiddenA;
            _next = _hiddenB;
        }

        /// <summary>The step's q rows on the device (segment output, attention input).</summary>
        public DeviceTensorBuffer<ushort> Q { get; } = null!;

        /// <summary>The step's k rows on the device.</summary>
        public DeviceTensorBuffer<ushort> K { get; } = null!;

        /// <summary>The step's v rows on the device.</summary>
        public DeviceTensorBuffer<ushort> V { get; } = null!;

        /// <summary>The MoH head mask rows on the device.</summary>
        public DeviceTensorBuffer<float> HeadMask { get; } = null!;

        /// <summary>The attention output rows on the device (next segment's input).</summary>
        public DeviceTensorBuffer<ushort> Attention { get; } = null!;

        /// <summary>New tokens of the lane's rows in the current step.</summary>
        public int Tokens { get; private set; }

        /// <summary>Bytes the lane's host attention moved between the GPU and the host in the current step.</summary>
        public long OffloadBytes { get; private set; }

        /// <summary>Sets the host backends this lane plans and attends with (none: attention on the GPU).</summary>
        public void UseBackends(IAttentionBackend[] backends)
        {
            _backends = backends;
            _ticks = new long[backends.Length];
        }

        /// <summary>Packs and uploads <paramref name="batch"/>'s rows, sizes every buffer and plans the host backends.</summary>
        public void Begin(ForwardBatch batch)
        {
            var tokens = batch.TokenCount;
            Tokens = tokens;
            _logitRows = batch.LogitRowCount;
            _distributions = batch.DistributionsWanted || _nextTokens is null;
            SplitStep.Pack(batch, _runner.BlockSize, _ids.Reserve(tokens), _positions.Reserve(tokens));
            batch.WriteLogitIndices(_logitsIndices.Reserve(Math.Max(1, _logitRows)));
            _ids.Upload(tokens);
            _positions.Upload(tokens);
            _logitsIndices.Upload(_logitRows);

            // Every buffer is sized before the step binds any view: growing reallocates and drops the views.
            var r = _runner;
            ReserveDevice(tokens);
            if (_distributions)
            {
                _logits.Reserve(Math.Max(1, _logitRows) * _model.Spec.VocabularySize);
            }

            _nextTokens?.Reserve(Math.Max(1, _logitRows));
            if (_backends.Length > 0)
            {
                Grow(ref _qFloat, tokens * r._maxQueryWidth);
                if (_routedQueries is not null)
                {
                    Grow(ref _mask, tokens * r._maxHeads);
                }

                Grow(ref _kFloat, tokens * r._maxKvWidth);
                Grow(ref _vFloat, tokens * r._maxKvWidth);
                Grow(ref _output, tokens * r._maxOutputWidth);
                Grow(ref _lse, tokens * r._maxHeads);
                if (_backends.Length > 1 || r._mixed is not null)
                {
                    Grow(ref _partOutput, tokens * r._maxOutputWidth);
                    Grow(ref _partLse, tokens * r._maxHeads);
                }
            }

            foreach (var backend in _backends)
            {
                backend.Plan(batch);
            }

            if (_runner._prompt is not null)
            {
                PromptAttention.FreshRows(batch, _model.PrefillMinTokens, _fresh);
                PromptAttention.Rest(_fresh, Tokens, _rest);
            }

            _all[0] = (0, tokens);

            _hidden = _hiddenA;
            _next = _hiddenB;
            _ticks.AsSpan().Clear();
            OffloadBytes = 0;
        }

        /// <summary>
        /// Packs and uploads a captured decode step (ADR 0011): <paramref name="batch"/>'s one-token rows, then padding rows
        /// (token 0 at position 0) up to <paramref name="padded"/>, every row its own logit row; the buffers are the lane's
        /// fixed ones.
        /// </summary>
        public void BeginPadded(ForwardBatch batch, int padded)
        {
            var rows = batch.RowCount;
            Tokens = padded;
            _logitRows = padded;
            _distributions = false;
            var ids = _ids.Reserve(padded);
            var positions = _positions.Reserve(padded);
            SplitStep.Pack(batch, _runner.BlockSize, ids, positions);
            ids[rows..].Clear();
            positions[rows..].Clear();
            var indices = _logitsIndices.Reserve(padded);
            for (var i = 0; i < padded; i++)
            {
                indices[i] = i;
            }

            _ids.Upload(padded);
            _positions.Upload(padded);
            _logitsIndices.Upload(padded);
            _hidden = _hiddenA;
            _next = _hiddenB;
            OffloadBytes = 0;
        }

        /// <summary>
        /// Runs segment <paramref name="s"/> on the device (the LM head only when a row wants logits: a step of prefill
        /// chunks that return none has written all its KV by then) and returns its Stopwatch ticks.
        /// </summary>
        public long RunSegment(int s)
        {
            var ticks = _io.Run(_bindings[s], _model, s, Tokens, _logitRows, _distributions, _hidden, _next, _runner._runOptions);
            (_hidden, _next) = (_next, _hidden);
            return ticks;
        }

        /// <summary>Sizes the device buffers for <paramref name="tokens"/> tokens (growing reallocates them and drops their views).</summary>
        private void ReserveDevice(int tokens)
        {
            var r = _runner;
            _hiddenA.Reserve(tokens * _model.HiddenSize);
            _hiddenB.Reserve(tokens * _model.HiddenSize);
            Q.Reserve(tokens * r._maxQueryWidth);
            K.Reserve(tokens * r._maxKvWidth);
            V.Reserve(tokens * r._maxKvWidth);
            HeadMask.Reserve(tokens * r._maxHeads);
            _routedQueries?.Reserve(tokens * r._maxQueryWidth);
            _headIndex?.Reserve(tokens * r._maxHeads);
            _ropeCos.Reserve(tokens * _model.RotaryHalfWidth);
            _ropeSin.Reserve(tokens * _model.RotaryHalfWidth);
            Attention.Reserve(tokens * r._maxOutputWidth);
        }

        /// <summary>
        /// Copies attention call <paramref name="call"/>'s q, k, v (and mask) rows to their pinned host sides; the q of rows
        /// that attend on the device (<see cref="PromptAttention"/>) stays there: the host only appends their k and v.
        /// </summary>
        public void SendToHost(int call)
        {
            var spec = _model.Attention[call];
            if (Routed(spec))
            {
                // MoH: the queries of the heads each token uses and which heads they are; the host rebuilds the mask.
                var width = spec.ActiveHeads * spec.KeyWidth;
                foreach (var (offset, count) in HostRows)
                {
                    _routedQueries!.DownloadRange(offset * width, count * width);
                    _headIndex!.DownloadRange(offset * spec.ActiveHeads, count * spec.ActiveHeads);
                }
            }
            else
            {
                foreach (var (offset, count) in HostRows)
                {
                    Q.DownloadRange(offset * spec.QueryWidth, count * spec.QueryWidth);
                }

                if (spec.HeadMasked)
                {
                    HeadMask.Download(Tokens * spec.QueryHeads);
                }
            }

            K.Download(Tokens * spec.KvHeads * spec.KeyWidth);
            V.Download(Tokens * spec.KvHeads * spec.ValueWidth);
        }

        /// <summary>The token ranges whose queries the host reads: all, or those of rows that do not attend on the device.</summary>
        private List<(int Offset, int Count)> HostRows => _fresh.Count == 0 ? _all : _rest;

        /// <summary>Whether call <paramref name="spec"/>'s queries travel as the routed heads' only (an MoH layer of a build that gives them).</summary>
        private bool Routed(AttentionLayerSpec spec) => spec.HeadMasked && _routedQueries is not null;

        /// <summary>Brings the GPU pool's part (output and lse, of a mixed placement) back as the part the host backends merge into.</summary>
        public void TakeDevicePart(AttentionLayerSpec spec, DeviceTensorBuffer<float> deviceLse)
        {
            var length = Tokens * spec.OutputWidth;
            _runner.Widen(Attention.Download(length), _output.AsSpan(0, length));
            deviceLse.Download(Tokens * spec.QueryHeads).CopyTo(_lse);
        }

        /// <summary>
        /// Host attention for call <paramref name="call"/> over the downloaded rows: widened to fp32, attended by the lane's
        /// backends (merged into the GPU's part when <paramref name="merged"/>), narrowed into the output's pinned host
        /// side for <see cref="ReturnFromHost"/>. Backend ticks go to <paramref name="ticks"/> by device, or to the lane's own when null.
        /// Touches no CUDA memory.
        /// </summary>
        public void AttendOnHost(int call, bool merged, long[]? ticks)
        {
            var spec = _model.Attention[call];
            var tokens = Tokens;
            var q = _qFloat.AsSpan(0, tokens * spec.QueryWidth);
            var k = _kFloat.AsSpan(0, tokens * spec.KvHeads * spec.KeyWidth);
            var v = _vFloat.AsSpan(0, tokens * spec.KvHeads * spec.ValueWidth);
            // The rows attended on the device are never read here (their q was not brought back).
            ReadOnlySpan<float> mask = default;
            if (Routed(spec))
            {
                var heads = spec.QueryHeads;
                var routed = _routedQueries!.Host(tokens * spec.ActiveHeads * spec.KeyWidth);
                var index = _headIndex!.Host(tokens * spec.ActiveHeads);
                var hostMask = _mask.AsSpan(0, tokens * heads);
                if (_fresh.Count > 0)
                {
                    hostMask.Clear();
                }

                foreach (var (offset, count) in HostRows)
                {
                    RoutedHeadQueries.Expand(routed, index, offset, count, heads, spec.ActiveHeads, spec.KeyWidth, _runner.HalfStorage, q, hostMask);
                }

                mask = hostMask;
            }
            else
            {
                var width = spec.QueryWidth;
                var host = Q.Host(q.Length);
                foreach (var (offset, count) in HostRows)
                {
                    _runner.Widen(host.Slice(offset * width, count * width), q.Slice(offset * width, count * width));
                }

                mask = spec.HeadMasked ? HeadMask.Host(tokens * spec.QueryHeads) : default;
            }

            _runner.Widen(K.Host(k.Length), k);
            _runner.Widen(V.Host(v.Length), v);
            var output = _output.AsSpan(0, tokens * spec.OutputWidth);
            var lse = _lse.AsSpan(0, tokens * spec.QueryHeads);
            if (!merged)
            {
                // The rows attended on the device get their output there: nothing of theirs is cleared, narrowed or sent.
                foreach (var (offset, count) in HostRows)
                {
                    output.Slice(offset * spec.OutputWidth, count * spec.OutputWidth).Clear();
                    lse.Slice(offset * spec.QueryHeads, count * spec.QueryHeads).Fill(float.NegativeInfinity);
                }
            }

            SplitStep.Attend(_backends, call, spec, q, k, v, mask, output, lse, _partOutput, _partLse, _ticks, merged);
            if (ticks is not null)
            {
                // One micro-batch: the ticks go to the step's by device now (Begin and this leave the lane's at zero).
                AddAttentionTicks(ticks);
                _ticks.AsSpan().Clear();
            }

            var narrow = Attention.Reserve(output.Length);
            foreach (var (offset, count) in HostRows)
            {
                var rows = (offset * spec.OutputWidth)..((offset + count) * spec.OutputWidth);
                _runner.Narrow(output[rows], narrow[rows]);
            }

            OffloadBytes += SplitStep.OffloadBytes(spec, tokens, sizeof(ushort))
                - (Routed(spec) ? (long)tokens * (((spec.QueryHeads - spec.ActiveHeads) * spec.KeyWidth * sizeof(ushort)) - (spec.ActiveHeads * sizeof(long))) : 0);
        }

        /// <summary>
        /// Copies attention call <paramref name="call"/>'s output rows from their pinned host side to the device; with
        /// <c>--prefill-attention compute</c>, the rows that start at position 0 (which the host only appended, and whose
        /// output rows are neither narrowed nor sent) then get their attention over themselves from
        /// <see cref="PromptAttention"/>, written on the device over whatever those rows held.
        /// </summary>
        public void ReturnFromHost(int call)
        {
            var spec = _model.Attention[call];
            foreach (var (offset, count) in HostRows)
            {
                Attention.UploadRange(offset * spec.OutputWidth, count * spec.OutputWidth);
            }

            if (_fresh.Count > 0)
            {
                _runner._prompt!.Run(call, spec, _fresh, Q, K, V, spec.HeadMasked ? HeadMask : null, Attention, _runner._runOptions);
            }
        }

        /// <summary>Adds the ticks recorded on this lane to <paramref name="ticks"/>, by device (the host backends' device indices).</summary>
        public void AddAttentionTicks(long[] ticks)
        {
            for (var b = 0; b < _ticks.Length; b++)
            {
                ticks[_runner._hostIndex[b]] += _ticks[b];
            }
        }

        /// <summary>The logit rows of the last step.</summary>
        public ReadOnlySpan<float> Logits(int length) => _logits.Read(length);

        /// <summary>The argmax of each logit row of the last step (a model with <c>next_tokens</c> only).</summary>
        public ReadOnlySpan<long> NextTokens(int rows) => _deviceNext is { } device ? device.Download(rows) : _nextTokens!.Read(rows);

        /// <summary>Disposes the bindings and buffers (and, for the second lane, its planners; the first lane's are the runner's).</summary>
        public void Dispose()
        {
            if (!ReferenceEquals(_backends, _runner._hostBackends))
            {
                foreach (var backend in _backends)
                {
                    backend?.Dispose();
                }
            }

            foreach (var binding in _bindings)
            {
                binding?.Dispose();
            }

            foreach (var buffer in (DeviceTensorBuffer<ushort>?[])[_hiddenA, _hiddenB, Q, K, V, _ropeCos, _ropeSin, Attention])
            {
                buffer?.Dispose();
            }

            _ids?.Dispose();
            _positions?.Dispose();
            _logitsIndices?.Dispose();
            HeadMask?.Dispose();
            _logits?.Dispose();
            _nextTokens?.Dispose();
            _deviceNext?.Dispose();
            _deviceLogits?.Dispose();
            _routedQueries?.Dispose();
            _headIndex?.Dispose();
        }
    }
}
