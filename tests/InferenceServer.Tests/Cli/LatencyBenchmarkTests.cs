using InferenceServer.Cli;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Tests.Cli;

/// <summary>
/// <c>bench latency</c> hands the runner steps as the engine does: each row carries its sequence's id, the same id on
/// every step, so runners that keep a sequence's state between steps (the dense runner's decode bucket) take their
/// steady-state path; without ids every decode step was rebuilt from the pages (1.3-1.6x slower at 16 rows on the CPU).
/// </summary>
public sealed class LatencyBenchmarkTests
{
    [Fact]
    public void Measure_GivesEveryRowItsSequenceId_OnEveryStep()
    {
        var runner = new RecordingRunner();
        var (_, steps, _) = LatencyBenchmark.Measure(runner, vocab: 32, batchSize: 3, inputLength: 5, outputLength: 4, perRow: 1, new Random(1));
        Assert.Equal(3, steps.Length);
        Assert.Equal(4, runner.Steps.Count);
        foreach (var step in runner.Steps)
        {
            Assert.Equal([0L, 1L, 2L], step.Ids);
        }

        Assert.Equal([0, 0, 0], runner.Steps[0].Pasts);
        Assert.Equal([5, 5, 5], runner.Steps[1].Pasts);
        Assert.Equal([7, 7, 7], runner.Steps[3].Pasts);
    }

    private sealed class RecordingRunner : IModelRunner
    {
        public List<(long[] Ids, int[] Pasts)> Steps { get; } = [];

        public ModelSpec Spec { get; } = new() { VocabularySize = 32, ContextLength = 64, KvLayers = [], ElementType = KvElementType.Float32 };

        public int BlockCount => 3;

        public int BlockSize => 16;

        public void Forward(ForwardBatch batch, Span<float> logits)
        {
            Steps.Add(([.. Enumerable.Range(0, batch.RowCount).Select(r => batch.SequenceId(r))], [.. Enumerable.Range(0, batch.RowCount).Select(r => batch.PastLength(r))]));
            logits.Clear();
        }

        public void Dispose()
        {
        }
    }
}
