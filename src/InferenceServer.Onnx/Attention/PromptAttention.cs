// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// Prompt attention on the compute device (<c>--prefill-attention compute</c>, ADR 0005): a split step's rows that start
/// at position 0 (a fresh prompt, or the first chunk of one) attend over their own new tokens only, so their attention
/// needs no KV from the memory devices. It runs here, next to q, k and v, as <see cref="PromptAttentionGraph"/>
/// (GroupQueryAttention in prompt mode: flash attention on CUDA) once per such row, writing the row's attention output
/// in place; the host backends only append those rows' k and v (<see cref="CpuAttentionBackend.PromptRowMinTokens"/>); prompts shorter than
/// <see cref="OnnxSessionOptions.PrefillAttentionMinTokens"/> stay on the host, where they cost less than a launch.
/// Prefill is arithmetic (an 8k-token prompt of the 8B shape is 17.6 TFLOP of attention), which the host does at tens of
/// GFLOP/s per core. One session per distinct layer shape; steps that have no such rows touch nothing here.
/// </summary>
internal sealed class PromptAttention : IDisposable
{
    private readonly List<InferenceSession> _sessions = [];
    private readonly StepBinding[] _bindings;

    /// <summary>
    /// Creates the sessions for <paramref name="calls"/> (the split model's attention calls) in <paramref name="type"/> on
    /// CUDA device <paramref name="deviceId"/> (on <paramref name="stream"/> when not zero), or on the CPU with -1.
    /// </summary>
    /// <exception cref="ArgumentException">A call that GroupQueryAttention does not express (<see cref="Serves"/>).</exception>
    /// <exception cref="ExecutionProviderException">The graph does not load on the device.</exception>
    public PromptAttention(IReadOnlyList<AttentionLayerSpec> calls, TensorElementType type, int deviceId, IntPtr stream)
    {
        _bindings = new StepBinding[calls.Count];
        try
        {
            var byShape = new Dictionary<(int, int, int, float, bool), StepBinding>();
            for (var i = 0; i < calls.Count; i++)
            {
                var spec = calls[i];
                var key = (spec.QueryHeads, spec.KvHeads, spec.KeyWidth, spec.Scale, spec.HeadMasked);
                if (!byShape.TryGetValue(key, out var binding))
                {
                    var session = LayerPoolSessions.CreateSession(PromptAttentionGraph.Create(spec, type), spec.Layer, deviceId, stream, "--prefill-attention compute on");
                    _sessions.Add(session);
                    binding = new StepBinding(session, synchronize: stream == IntPtr.Zero);
                    byShape.Add(key, binding);
                }

                _bindings[i] = binding;
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Whether every call is one that <see cref="PromptAttentionGraph"/> expresses (GQA or MoH, one head width).</summary>
    public static bool Serves(IReadOnlyList<AttentionLayerSpec> calls)
    {
        foreach (var spec in calls)
        {
            if (!PromptAttentionGraph.Supports(spec))
            {
                return false;
            }
        }

        return calls.Count > 0;
    }

    /// <summary>Whether a row of <paramref name="count"/> new tokens after <paramref name="past"/> is attended here under the threshold <paramref name="minTokens"/> (0: never).</summary>
    public static bool IsPromptRow(int past, int count, int minTokens) => minTokens > 0 && past == 0 && count >= minTokens;

    /// <summary>
    /// Finds the rows of <paramref name="batch"/> that <see cref="IsPromptRow"/> gives here: appends each one's (first
    /// token, tokens) to <paramref name="rows"/> (cleared first) and returns how many there are.
    /// </summary>
    public static int FreshRows(ForwardBatch batch, int minTokens, List<(int Offset, int Count)> rows)
    {
        rows.Clear();
        var offset = 0;
        for (var r = 0; r < batch.RowCount; r++)
        {
            var count = batch.Tokens(r).Length;
            if (IsPromptRow(batch.PastLength(r), count, minTokens))
            {
                rows.Add((offset, count));
            }

            offset += count;
        }

        return rows.Count;
    }

    /// <summary>
    /// The token ranges of a step of <paramref name="tokens"/> packed tokens that <paramref name="rows"/> (from
    /// <see cref="FreshRows"/>, in order) leave out, into <paramref name="rest"/> (cleared first): the rows whose queries
    /// the host still reads.
    /// </summary>
    public static void Rest(List<(int Offset, int Count)> rows, int tokens, List<(int Offset, int Count)> rest)
    {
        rest.Clear();
        var next = 0;
        foreach (var (offset, count) in rows)
        {
            if (offset > next)
            {
                rest.Add((next, offset - next));
            }

            next = offset + count;
        }

        if (tokens > next)
        {
            rest.Add((next, tokens - next));
        }
    }

    /// <summary>
    /// Attention call <paramref name="call"/> (<paramref name="spec"/>) for each of <paramref name="rows"/>: reads its q,
    /// k, v (and MoH mask) rows from the step's buffers and writes its output rows into <paramref name="output"/>, run with
    /// the step's <paramref name="options"/> (on one CUDA stream they only queue).
    /// </summary>
    public void Run(int call, AttentionLayerSpec spec, List<(int Offset, int Count)> rows, ITensorViews q, ITensorViews k, ITensorViews v, ITensorViews? mask, ITensorViews output, RunOptions options)
    {
        var binding = _bindings[call];
        var kvWidth = spec.KvHeads * spec.KeyWidth;
        foreach (var (offset, count) in rows)
        {
            using var qView = q.ViewAt((long)offset * spec.QueryWidth, count, spec.QueryWidth);
            using var kView = k.ViewAt((long)offset * kvWidth, count, kvWidth);
            using var vView = v.ViewAt((long)offset * kvWidth, count, kvWidth);
            using var outView = output.ViewAt((long)offset * spec.OutputWidth, count, spec.OutputWidth);
            using var maskView = spec.HeadMasked ? mask!.ViewAt((long)offset * spec.QueryHeads, count, spec.QueryHeads) : null;
            binding.Input(PromptAttentionGraph.Query, qView);
            binding.Input(PromptAttentionGraph.Key, kView);
            binding.Input(PromptAttentionGraph.Value, vView);
            if (maskView is not null)
            {
                binding.Input(PromptAttentionGraph.HeadMask, maskView);
            }

            binding.Output(PromptAttentionGraph.Output, outView);
            binding.Run(options);
        }
    }

    /// <summary>Frees the bindings and sessions.</summary>
    public void Dispose()
    {
        foreach (var binding in _bindings.Distinct())
        {
            binding?.Dispose();
        }

        foreach (var session in _sessions)
        {
            session.Dispose();
        }
    }
}
