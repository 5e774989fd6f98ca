// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The runner for Optimum-style graphs with dense past tensors: host-memory KV pages (<see cref="PagedKvStore"/>)
/// gathered into each step's past tensors by <see cref="OnnxDecoderModel.Forward"/>.
/// </summary>
public sealed partial class DenseKvRunner : IModelRunner
{
    private readonly OnnxDecoderModel _model;
    private readonly PagedKvStore _store;

    /// <summary>Creates the runner with <paramref name="blockCount"/> blocks of <paramref name="blockSize"/> tokens.</summary>
    public DenseKvRunner(OnnxDecoderModel model, int blockCount, int blockSize)
    {
        _model = model;
        _store = new PagedKvStore(model.Spec, blockCount, blockSize);
    }

    /// <inheritdoc />
    public ModelSpec Spec => _model.Spec;

    /// <inheritdoc />
    public int BlockCount => _store.BlockCount;

    /// <inheritdoc />
    public int BlockSize => _store.BlockSize;

    /// <inheritdoc />
    public void Forward(ForwardBatch batch, Span<float> logits) => _model.Forward(batch, _store, logits);

    /// <summary>Nothing to release: the session belongs to the served model and the store is managed memory.</summary>
    public void Dispose()
    {
    }
}
