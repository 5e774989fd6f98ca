// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Onnx.Runtime;

/// <summary>A buffer that hands out <see cref="OrtValue"/> views of its prefix by shape (pinned host or device memory).</summary>
internal interface ITensorViews
{
    /// <summary>A view shaped <c>[rows]</c> (columns -1) or <c>[rows, columns]</c>.</summary>
    OrtValue View(long rows, long columns = -1);

    /// <summary>
    /// A new view (the caller disposes it) of <paramref name="rows"/> x <paramref name="columns"/> elements from element
    /// <paramref name="offset"/>: a chunk of a step's rows.
    /// </summary>
    OrtValue ViewAt(long offset, long rows, long columns);
}

/// <summary>
/// One split-runner lane's segment I/O buffers (ADR 0005, 0010) and the one way both split runners bind and run a segment:
/// the CPU runner's pinned host buffers and the CUDA runner's device buffers differ only in where the bytes live.
/// </summary>
internal sealed class SegmentTensors
{
    private readonly ITensorViews _ids;
    private readonly ITensorViews _positions;
    private readonly ITensorViews _logitsIndices;
    private readonly ITensorViews _ropeCos;
    private readonly ITensorViews _ropeSin;
    private readonly ITensorViews _q;
    private readonly ITensorViews _k;
    private readonly ITensorViews _v;
    private readonly ITensorViews _attention;
    private readonly ITensorViews _headMask;
    private readonly ITensorViews _logits;
    private readonly ITensorViews? _nextTokens;
    private readonly OrtMemoryInfo? _deviceMemory;
    private readonly ITensorViews? _routedQueries;
    private readonly ITensorViews? _headIndex;
    private readonly bool _logitsOnDevice;
    private int _deviceLogitRows = -1;

    /// <summary>
    /// The buffers of a lane: packed inputs, RoPE rows, q, k, v, attention output, MoH mask and logits; with
    /// <paramref name="nextTokens"/> (a model whose last segment gives <c>next_tokens</c>) and <paramref name="deviceMemory"/>,
    /// the argmax comes back every step and the logits only when the step wants distributions (else they stay in
    /// <paramref name="deviceMemory"/>, where ONNX Runtime allocates them). With <paramref name="routedQueries"/> and
    /// <paramref name="headIndex"/> an MoH call's segment also writes its routed heads' queries there. With
    /// <paramref name="logitsOnDevice"/> (a captured lane, ADR 0011: every output at a fixed address) <paramref name="logits"/>
    /// and <paramref name="nextTokens"/> are device buffers, bound at every step.
    /// </summary>
    public SegmentTensors(
        ITensorViews ids, ITensorViews positions, ITensorViews logitsIndices, ITensorViews ropeCos, ITensorViews ropeSin,
        ITensorViews q, ITensorViews k, ITensorViews v, ITensorViews attention, ITensorViews headMask, ITensorViews logits,
        ITensorViews? nextTokens = null, OrtMemoryInfo? deviceMemory = null, ITensorViews? routedQueries = null, ITensorViews? headIndex = null,
        bool logitsOnDevice = false)
    {
        _logitsOnDevice = logitsOnDevice;
        _routedQueries = routedQueries;
        _headIndex = headIndex;
        _nextTokens = nextTokens;
        _deviceMemory = deviceMemory;
        _ids = ids;
        _positions = positions;
        _logitsIndices = logitsIndices;
        _ropeCos = ropeCos;
        _ropeSin = ropeSin;
        _q = q;
        _k = k;
        _v = v;
        _attention = attention;
        _headMask = headMask;
        _logits = logits;
    }

    /// <summary>
    /// Binds and runs segment <paramref name="s"/> of <paramref name="model"/> over <paramref name="tokens"/> packed
    /// tokens, reading the residual stream from <paramref name="hidden"/> and writing it to <paramref name="next"/>;
    /// returns its Stopwatch ticks. The LM head (the last segment) runs only when <paramref name="logitRows"/> > 0: a step
    /// of prefill chunks that return no logits has written all its KV by then, and 0 is returned. Without
    /// <paramref name="distributions"/> the logits stay on the device where the lane has a <c>next_tokens</c> buffer.
    /// </summary>
    public long Run(StepBinding binding, SplitDecoderModel model, int s, int tokens, int logitRows, bool distributions, ITensorViews hidden, ITensorViews next, RunOptions options)
    {
        var calls = model.Attention;
        if (s == calls.Count && logitRows == 0)
        {
            return 0;
        }

        var start = Stopwatch.GetTimestamp();
        var width = model.HiddenSize;
        var half = model.RotaryHalfWidth;
        if (s == 0)
        {
            binding.Input("input_ids", _ids.View(tokens));
            binding.Input("position_ids", _positions.View(tokens));
        }
        else
        {
            binding.Input("hidden", hidden.View(tokens, width));
            binding.Input("attention", _attention.View(tokens, calls[s - 1].OutputWidth));
            if (s < calls.Count)
            {
                binding.Input("rope_cos", _ropeCos.View(tokens, half));
                binding.Input("rope_sin", _ropeSin.View(tokens, half));
            }
            else
            {
                binding.Input("logits_indices", _logitsIndices.View(logitRows));
            }
        }

        if (s == calls.Count)
        {
            BindHead(binding, model, logitRows, distributions);
        }
        else
        {
            var spec = calls[s];
            binding.Output("hidden_out", next.View(tokens, width));
            binding.Output("q", _q.View(tokens, spec.QueryWidth));
            binding.Output("k", _k.View(tokens, spec.KvHeads * spec.KeyWidth));
            binding.Output("v", _v.View(tokens, spec.KvHeads * spec.ValueWidth));
            if (s == 0)
            {
                binding.Output("rope_cos", _ropeCos.View(tokens, half));
                binding.Output("rope_sin", _ropeSin.View(tokens, half));
            }

            if (spec.HeadMasked)
            {
                binding.Output("head_mask", _headMask.View(tokens, spec.QueryHeads));
                if (_routedQueries is not null && _headIndex is not null)
                {
                    binding.Output(SplitDecoderModel.RoutedQueryOutput, _routedQueries.View(tokens, spec.ActiveHeads * spec.KeyWidth));
                    binding.Output(SplitDecoderModel.HeadIndexOutput, _headIndex.View(tokens, spec.ActiveHeads));
                }
            }
        }

        binding.Run(options);
        return Stopwatch.GetTimestamp() - start;
    }

    /// <summary>The LM head's outputs: logits to the host buffer, or left on the device beside <c>next_tokens</c>.</summary>
    private void BindHead(StepBinding binding, SplitDecoderModel model, int logitRows, bool distributions)
    {
        if (_nextTokens is null || _deviceMemory is null)
        {
            binding.Output("logits", _logits.View(logitRows, model.Spec.VocabularySize));
            return;
        }

        binding.Output(PagedDecoderModel.NextTokens, _nextTokens.View(logitRows));
        if (distributions || _logitsOnDevice)
        {
            binding.Output("logits", _logits.View(logitRows, model.Spec.VocabularySize));
            _deviceLogitRows = -1;
        }
        else if (_deviceLogitRows != logitRows)
        {
            // ONNX Runtime allocates the output on the device and it is never copied back; the value it leaves bound is
            // reused by the next run of that shape, so it is bound afresh only when the row count changes.
            binding.OutputTo("logits", _deviceMemory);
            _deviceLogitRows = logitRows;
        }
    }
}
