using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Engine.Tests.Scheduling;

/// <summary>
/// An independent oracle for the scheduler: its own session of the fixture graph, and every call a fresh full forward of
/// the given tokens from position 0 (no KV reuse, no batching, no chunking), returning the last position's logits.
/// </summary>
internal sealed class ReferenceModel : IDisposable
{
    private readonly OnnxDecoderModel _model;
    private readonly DenseKvRunner _runner;
    private readonly ForwardBatch _batch = new();

    public ReferenceModel(string fixture)
    {
        _model = OnnxDecoderModel.Open(ModelPackage.Load(SchedulerHarness.Fixture(fixture)));
        _runner = new DenseKvRunner(_model, 64, 16);
    }

    public int Vocab => _model.Spec.VocabularySize;

    /// <summary>The logits after <paramref name="tokens"/> (the distribution of the next token).</summary>
    public float[] LastLogits(IReadOnlyList<int> tokens)
    {
        var ids = tokens.ToArray();
        var blocks = Enumerable.Range(0, (ids.Length + 15) / 16).ToArray();
        _batch.Clear();
        _batch.AddRow(ids, 0, blocks, wantLogits: true);
        var logits = new float[Vocab];
        _runner.Forward(_batch, logits);
        return logits;
    }

    public static double[] LogSoftmax(float[] logits)
    {
        var max = logits.Max();
        var logSum = max + Math.Log(logits.Sum(l => Math.Exp(l - (double)max)));
        return logits.Select(l => l - logSum).ToArray();
    }

    public void Dispose()
    {
        _runner.Dispose();
        _model.Dispose();
    }
}
