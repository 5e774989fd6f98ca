// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Runs engine steps for a model over a KV store it owns. The scheduler speaks only in block ids (its KV-cache manager
/// decides which block holds which tokens); where the bytes live (host pages assembled into dense past tensors, device
/// memory, another process behind attention offloading) is the runner's business, so a new store needs no scheduler change.
/// </summary>
public interface IModelRunner : IDisposable
{
    /// <summary>The model's vocabulary, context length and KV layout.</summary>
    ModelSpec Spec { get; }

    /// <summary>Blocks in the runner's KV store.</summary>
    int BlockCount { get; }

    /// <summary>Tokens per block.</summary>
    int BlockSize { get; }

    /// <summary>
    /// Whether one <see cref="Forward"/> call should carry decodes and prefill chunks together (packed graphs, which pay
    /// nothing for rows of different lengths), rather than one call for each (dense graphs pad every row to the longest).
    /// </summary>
    bool RunsMixedBatches => false;

    /// <summary>
    /// Whether <see cref="Forward"/> fills <see cref="ForwardBatch.Argmax"/>, and so may skip returning logits when
    /// <see cref="ForwardBatch.DistributionsWanted"/> is false.
    /// </summary>
    bool ReportsArgmax => false;

    /// <summary>
    /// Runs <paramref name="batch"/>: writes each row's new tokens' KV into its blocks and the logits the rows ask for into
    /// <paramref name="logits"/>, <see cref="ModelSpec.VocabularySize"/> floats per logit row, in row order: one row for a
    /// <see cref="RowLogits.Last"/> row, one per new position (in order) for a <see cref="RowLogits.All"/> row
    /// (<see cref="ForwardBatch.LogitRowCount"/> in all).
    /// </summary>
    void Forward(ForwardBatch batch, Span<float> logits);
}
