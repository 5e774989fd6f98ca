// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Runtime;

internal sealed partial class SplitRunner
{
    /// <summary>
    /// One micro-batch's state (ADR 0010): its packed inputs, residual stream, q, k, v, attention output and logits, its
    /// bindings of the segment sessions and its backends' plans (the second lane's backends share the first's pages).
    /// </summary>
    private sealed class Lane : IStepLane, IDisposable
    {
        private readonly SplitRunner _runner;
        private readonly SplitDecoderModel _model;
        private readonly IAttentionBackend[] _backends;
        private readonly PinnedTensorBuffer<long> _ids = new(256);
        private readonly PinnedTensorBuffer<long> _positions = new(256);
        private readonly PinnedTensorBuffer<long> _logitsIndices = new(64);
        private readonly PinnedTensorBuffer<float> _hiddenA = new(1024);
        private readonly PinnedTensorBuffer<float> _hiddenB = new(1024);
        private readonly PinnedTensorBuffer<float> _q = new(1024);
        private readonly PinnedTensorBuffer<float> _k = new(1024);
        private readonly PinnedTensorBuffer<float> _v = new(1024);
        private readonly PinnedTensorBuffer<float> _headMask = new(64);
        private readonly PinnedTensorBuffer<float> _ropeCos = new(256);
        private readonly PinnedTensorBuffer<float> _ropeSin = new(256);
        private readonly PinnedTensorBuffer<float> _attention = new(1024);
        private readonly PinnedTensorBuffer<float> _logits = new(1024);
        private readonly StepBinding[] _bindings;
        private readonly SegmentTensors _io;
        private readonly long[] _ticks;
        private readonly int _maxQueryWidth;
        private readonly int _maxKvWidth;
        private readonly int _maxOutputWidth;
        private readonly int _maxHeads;
        private float[] _lse = [];
        private float[] _partOutput = [];
        private float[] _partLse = [];
        private PinnedTensorBuffer<float> _hidden;
        private PinnedTensorBuffer<float> _next;
        private readonly List<(int Offset, int Count)> _fresh = [];
        private int _tokens;
        private int _logitRows;

        public Lane(SplitRunner runner, IAttentionBackend[] backends)
        {
            _runner = runner;
            _model = runner._model;
            _backends = backends;
            _ticks = new long[backends.Length];
            _hidden = _hiddenA;
            _next = _hiddenB;
            foreach (var spec in _model.Attention)
            {
                _maxQueryWidth = Math.Max(_maxQueryWidth, spec.QueryWidth);
                _maxKvWidth = Math.Max(_maxKvWidth, spec.KvHeads * Math.Max(spec.KeyWidth, spec.ValueWidth));
                _maxOutputWidth = Math.Max(_maxOutputWidth, spec.OutputWidth);
                _maxHeads = Math.Max(_maxHeads, spec.QueryHeads);
            }

            // Segment I/O through bindings of pinned host views (the CPU provider reads and writes them in place): a steady
            // step rebinds nothing and allocates nothing.
            _io = new SegmentTensors(_ids, _positions, _logitsIndices, _ropeCos, _ropeSin, _q, _k, _v, _attention, _headMask, _logits);
            _bindings = new StepBinding[_model.Segments.Count];
            for (var s = 0; s < _bindings.Length; s++)
            {
                _bindings[s] = new StepBinding(_model.Segments[s]);
            }
        }

        /// <summary>Bytes this lane's step sent to and from the memory devices.</summary>
        public long OffloadBytes { get; private set; }

        /// <summary>Packs <paramref name="batch"/>'s rows, sizes every buffer and plans the backends.</summary>
        public void Begin(ForwardBatch batch)
        {
            _tokens = batch.TokenCount;
            _logitRows = batch.LogitRowCount;
            var vocab = _model.Spec.VocabularySize;
            SplitStep.Pack(batch, _runner.BlockSize, _ids.Reserve(_tokens), _positions.Reserve(_tokens));
            batch.WriteLogitIndices(_logitsIndices.Reserve(Math.Max(1, _logitRows)));

            // Every buffer is sized before the step writes any: growing discards contents.
            _hiddenA.Reserve(_tokens * _model.HiddenSize);
            _hiddenB.Reserve(_tokens * _model.HiddenSize);
            _q.Reserve(_tokens * _maxQueryWidth);
            _k.Reserve(_tokens * _maxKvWidth);
            _v.Reserve(_tokens * _maxKvWidth);
            _headMask.Reserve(_tokens * _maxHeads);
            _ropeCos.Reserve(_tokens * _model.RotaryHalfWidth);
            _ropeSin.Reserve(_tokens * _model.RotaryHalfWidth);
            _attention.Reserve(_tokens * _maxOutputWidth);
            _logits.Reserve(Math.Max(1, _logitRows) * vocab);
            Grow(ref _lse, _tokens * _maxHeads);
            if (_backends.Length > 1)
            {
                Grow(ref _partOutput, _tokens * _maxOutputWidth);
                Grow(ref _partLse, _tokens * _maxHeads);
            }

            foreach (var backend in _backends)
            {
                backend.Plan(batch);
            }

            if (_runner._prompt is not null)
            {
                PromptAttention.FreshRows(batch, _model.PrefillMinTokens, _fresh);
            }

            _hidden = _hiddenA;
            _next = _hiddenB;
            _ticks.AsSpan().Clear();
            OffloadBytes = 0;
        }

        /// <summary>
        /// Runs segment <paramref name="s"/> (the LM head only when a row wants logits: a step of prefill chunks that
        /// return none has written all its KV by then) and returns its Stopwatch ticks.
        /// </summary>
        public long RunSegment(int s)
        {
            var ticks = _io.Run(_bindings[s], _model, s, _tokens, _logitRows, distributions: true, _hidden, _next, _runner._runOptions);
            (_hidden, _next) = (_next, _hidden);
            return ticks;
        }

        /// <summary>Attention call <paramref name="call"/> over this lane's rows; backend ticks go to <paramref name="ticks"/>, or the lane's own when null.</summary>
        public void Attend(int call, long[]? ticks)
        {
            var spec = _model.Attention[call];
            var tokens = _tokens;
            var q = _q.Read(tokens * spec.QueryWidth);
            var k = _k.Read(tokens * spec.KvHeads * spec.KeyWidth);
            var v = _v.Read(tokens * spec.KvHeads * spec.ValueWidth);
            var mask = spec.HeadMasked ? _headMask.Read(tokens * spec.QueryHeads) : default;
            var output = _attention.Reserve(tokens * spec.OutputWidth);
            var lse = _lse.AsSpan(0, tokens * spec.QueryHeads);
            SplitStep.Attend(_backends, call, spec, q, k, v, mask, output, lse, _partOutput, _partLse, ticks ?? _ticks);
            OffloadBytes += SplitStep.OffloadBytes(spec, tokens, sizeof(float));
        }

        /// <summary>Nothing to move: the segments write q, k, v to the host arrays the backends read.</summary>
        public void SendToHost(int call)
        {
        }

        /// <summary>
        /// Nothing to move (the backends write the output where the next segment reads it), but with <c>--prefill-attention
        /// compute</c> the rows that start at position 0 get their attention from <see cref="PromptAttention"/> here.
        /// </summary>
        public void ReturnFromHost(int call)
        {
            if (_fresh.Count > 0)
            {
                var spec = _model.Attention[call];
                _runner._prompt!.Run(call, spec, _fresh, _q, _k, _v, spec.HeadMasked ? _headMask : null, _attention, _runner._runOptions);
            }
        }

        /// <summary>Adds the ticks the worker's calls recorded on this lane to <paramref name="ticks"/>.</summary>
        public void AddAttentionTicks(long[] ticks)
        {
            for (var b = 0; b < ticks.Length; b++)
            {
                ticks[b] += _ticks[b];
            }
        }

        /// <summary>The logit rows of the last step.</summary>
        public ReadOnlySpan<float> Logits(int length) => _logits.Read(length);

        /// <summary>Disposes the views and this lane's backends (a shared lane's leave the pages to the owner's).</summary>
        public void Dispose()
        {
            foreach (var backend in _backends)
            {
                backend?.Dispose();
            }

            foreach (var binding in _bindings)
            {
                binding.Dispose();
            }

            foreach (var buffer in (PinnedTensorBuffer<float>[])[_hiddenA, _hiddenB, _q, _k, _v, _headMask, _ropeCos, _ropeSin, _attention, _logits])
            {
                buffer.Dispose();
            }

            _ids.Dispose();
            _positions.Dispose();
            _logitsIndices.Dispose();
        }

        private static void Grow(ref float[] array, int length)
        {
            if (length > array.Length)
            {
                Array.Resize(ref array, Math.Max(length, array.Length * 2));
            }
        }
    }
}
