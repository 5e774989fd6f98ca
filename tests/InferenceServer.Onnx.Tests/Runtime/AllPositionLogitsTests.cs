using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary><see cref="RowLogits.All"/>: a row returns one logit row per new position, equal to running each prefix alone.</summary>
public sealed class AllPositionLogitsTests
{
    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("deepseek-v3-mla")]
    public void AllPositions_InChunks_MatchEachPrefixAlone_AndLeaveOtherRowsAlone(string fixture)
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(FixturePaths.Fixture(fixture)));
        var vocab = model.Spec.VocabularySize;
        using var runner = new DenseKvRunner(model, 64, 16);
        var prompt = Enumerable.Range(0, 21).Select(i => (i * 37 % 1000) + 3).ToArray();
        var other = Enumerable.Range(0, 9).Select(i => (i * 11 % 1000) + 5).ToArray();

        // Reference: each prefix alone from position 0, its last position only.
        var expected = new float[prompt.Length][];
        var single = new ForwardBatch();
        for (var p = 0; p < prompt.Length; p++)
        {
            single.Clear();
            single.AddRow(prompt.AsSpan(0, p + 1), 0, [40, 41], RowLogits.Last);
            expected[p] = new float[vocab];
            runner.Forward(single, expected[p]);
        }

        var otherExpected = new float[vocab];
        single.Clear();
        single.AddRow(other, 0, [42], RowLogits.Last);
        runner.Forward(single, otherExpected);

        // The prompt in two chunks (13, then 8 over the first's KV), each batched with a row that wants only its last logits.
        var batch = new ForwardBatch();
        int[] blocks = [0, 1];
        var actual = new List<float[]>();
        foreach (var (start, length) in new[] { (0, 13), (13, 8) })
        {
            batch.Clear();
            batch.AddRow(other, 0, [2], RowLogits.Last);
            batch.AddRow(prompt.AsSpan(start, length), start, blocks, RowLogits.All);
            batch.AddRow(other.AsSpan(0, 4), 0, [3], RowLogits.None);
            Assert.Equal(1 + length, batch.LogitRowCount);
            var logits = new float[batch.LogitRowCount * vocab];
            runner.Forward(batch, logits);
            LogitAssert.Close(otherExpected, logits.AsSpan(0, vocab), "other row");
            for (var j = 0; j < length; j++)
            {
                actual.Add(logits.AsSpan((1 + j) * vocab, vocab).ToArray());
            }
        }

        Assert.Equal(prompt.Length, actual.Count);
        for (var p = 0; p < prompt.Length; p++)
        {
            LogitAssert.Close(expected[p], actual[p], $"position {p}");
        }
    }
}
