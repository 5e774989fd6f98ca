// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Packaging;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// A decoder graph with Optimum-style I/O (<c>input_ids</c>, <c>attention_mask</c>, <c>position_ids</c>,
/// <c>past_key_values.{i}.key|value</c> in; <c>logits</c>, <c>present.{i}.key|value</c> out), or the onnxruntime-genai
/// names of <see cref="DecoderIo"/>, in one ONNX Runtime session: the graph, its spec and its session, and no step state.
/// Its runner (<see cref="DenseKvRunner"/>) owns the step, the present-reuse state and the host KV pages.
/// </summary>
public sealed partial class OnnxDecoderModel : IDecoderModel
{
    private const string UseCacheBranch = "use_cache_branch";

    private OnnxDecoderModel(InferenceSession session, ModelSpec spec, bool hasPositionIds, bool hasUseCacheBranch, DecoderIo io)
    {
        Session = session;
        Spec = spec;
        HasPositionIds = hasPositionIds;
        HasUseCacheBranch = hasUseCacheBranch;
        ContiguousRows = io.ContiguousRows;
        HasSeqlensK = session.InputMetadata.ContainsKey(io.SeqlensK);
        HasTotalSequenceLength = session.InputMetadata.ContainsKey(io.TotalSequenceLength);

        var inputs = new List<string> { io.InputIds, io.AttentionMask };
        if (hasPositionIds)
        {
            inputs.Add(io.PositionIds);
        }

        if (hasUseCacheBranch)
        {
            inputs.Add(UseCacheBranch);
        }

        if (HasSeqlensK)
        {
            inputs.Add(io.SeqlensK);
        }

        if (HasTotalSequenceLength)
        {
            inputs.Add(io.TotalSequenceLength);
        }

        var outputs = new List<string> { io.Logits };
        foreach (var layer in spec.KvLayers)
        {
            inputs.Add(DecoderIo.Format(io.PastKeyNames, layer.Layer));
            inputs.Add(DecoderIo.Format(io.PastValueNames, layer.Layer));
            outputs.Add(DecoderIo.Format(io.PresentKeyNames, layer.Layer));
            outputs.Add(DecoderIo.Format(io.PresentValueNames, layer.Layer));
        }

        InputNames = [.. inputs];
        OutputNames = [.. outputs];
    }

    /// <summary>The model's vocabulary, context length and KV layout, read from the graph.</summary>
    public ModelSpec Spec { get; }

    /// <summary>Where the model runs: <c>cpu</c> or <c>cuda:N</c>.</summary>
    public ComputeDevice Device { get; private init; }

    /// <summary>Why <c>auto</c> chose the CPU (the CUDA provider's load error), or null.</summary>
    public string? DeviceNote { get; private init; }

    /// <inheritdoc />
    public string? GraphNote { get; private init; }

    /// <summary>The session (its runner runs it; the model disposes it).</summary>
    internal InferenceSession Session { get; }

    /// <summary>
    /// The inputs a step feeds, in order: ids, mask, then those the graph has of positions, <c>use_cache_branch</c>,
    /// <c>seqlens_k</c> and <c>total_sequence_length</c>, then each KV layer's past key and value.
    /// </summary>
    internal string[] InputNames { get; }

    /// <summary>The outputs a step reads, in order: logits, then each KV layer's present key and value.</summary>
    internal string[] OutputNames { get; }

    /// <summary>Whether the graph takes <c>position_ids</c>.</summary>
    internal bool HasPositionIds { get; }

    /// <summary>Whether the graph takes Optimum's merged-decoder <c>use_cache_branch</c>.</summary>
    internal bool HasUseCacheBranch { get; }

    /// <summary>Whether rows are contiguous from 0 (GroupQueryAttention, onnxruntime-genai folders) instead of right-padded.</summary>
    internal bool ContiguousRows { get; }

    /// <summary>Whether the graph takes GroupQueryAttention's <c>seqlens_k</c>.</summary>
    internal bool HasSeqlensK { get; }

    /// <summary>Whether the graph takes GroupQueryAttention's <c>total_sequence_length</c>.</summary>
    internal bool HasTotalSequenceLength { get; }

    /// <summary>Opens <paramref name="package"/>'s dense-past graph on the device <paramref name="options"/> names and reads its KV layout.</summary>
    /// <exception cref="ModelPackageException">The graph cannot be loaded or lacks the expected inputs.</exception>
    public static OnnxDecoderModel Open(ModelPackage package, OnnxSessionOptions? options = null)
    {
        var (session, device, deviceNote, graphNote) = new OnnxSessionFactory(options ?? new OnnxSessionOptions()).OpenModel(package);
        return FromSession(session, package, device, deviceNote, graphNote);
    }

    /// <summary>Wraps an open session of a dense-past graph; disposes it when the graph is not one.</summary>
    internal static OnnxDecoderModel FromSession(InferenceSession session, ModelPackage package, ComputeDevice device, string? deviceNote, string? graphNote = null)
    {
        try
        {
            var (spec, hasPositions, hasBranch) = Inspect(session, package);
            return new OnnxDecoderModel(session, spec, hasPositions, hasBranch, package.Io) { Device = device, DeviceNote = deviceNote, GraphNote = graphNote };
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>Host memory: the engine sizes a fractional <c>--kv-cache-memory</c> from the process's available memory.</summary>
    public long? DeviceFreeMemory => null;

    /// <inheritdoc />
    public long? DeviceTotalMemory => null;

    /// <summary>Any block size: the host pages have no kernel constraint.</summary>
    public int ChooseBlockSize(int requested) => requested;

    /// <summary>A <see cref="DenseKvRunner"/>: host KV pages gathered into this graph's dense past tensors.</summary>
    public IModelRunner CreateRunner(int blockCount, int blockSize) => new DenseKvRunner(this, blockCount, blockSize);

    /// <inheritdoc />
    public void Dispose() => Session.Dispose();
}
