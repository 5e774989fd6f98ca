using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>
/// The dense runner's logit budget: a step whose padded logits exceed it runs as groups of rows and, for a row longer
/// than the budget, chunks of its tokens. Every logit row must equal the one the whole step gives, in the same order,
/// for rows that want their last position, all positions or none; and the next steps, which read the KV the parts
/// wrote, must too. (On the H100 a 55-prompt step of DeepSeek-V2's vocabulary failed every request before this.)
/// </summary>
public sealed class LogitBudgetTests
{
    private const int BlockSize = 16;

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("deepseek-v3-mla")]
    public void StepsOverTheBudget_GiveTheWholeStepsLogits(string fixture)
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(FixturePaths.Fixture(fixture)));
        var vocab = model.Spec.VocabularySize;
        using var whole = new DenseKvRunner(model, 16, BlockSize);
        using var parts = new DenseKvRunner(model, 16, BlockSize) { MaxStepLogitFloats = 8L * vocab };

        // Step 0: five prompts; the 20-token one (past the 8-token budget) runs in three chunks and wants all positions,
        // the 12-token one in two chunks wants its last, the others group in pairs (at most 8 padded tokens a call).
        // Step 1: the five decode beside a new 11-token prompt that wants nothing back. Steps 2-3: six decodes.
        int[][] prompts = [Tokens(3, 1), Tokens(20, 2), Tokens(4, 3), Tokens(12, 4), Tokens(2, 5), Tokens(11, 6)];
        RowLogits[] wanted = [RowLogits.Last, RowLogits.All, RowLogits.Last, RowLogits.Last, RowLogits.All, RowLogits.None];
        var pasts = new int[prompts.Length];
        var next = new int[prompts.Length];
        var batch = new ForwardBatch();
        for (var step = 0; step < 4; step++)
        {
            batch.Clear();
            var rows = step == 0 ? 5 : prompts.Length;
            for (var s = 0; s < rows; s++)
            {
                var prompt = pasts[s] == 0;
                int[] tokens = prompt ? prompts[s] : [next[s]];
                batch.AddRow(tokens, pasts[s], [2 * s, (2 * s) + 1], prompt ? wanted[s] : RowLogits.Last, sequenceId: s);
            }

            var expected = new float[batch.LogitRowCount * vocab];
            var actual = new float[batch.LogitRowCount * vocab];
            whole.Forward(batch, expected);
            parts.Forward(batch, actual);
            for (var row = 0; row < batch.LogitRowCount; row++)
            {
                LogitAssert.Close(expected.AsSpan(row * vocab, vocab), actual.AsSpan(row * vocab, vocab), $"step {step}, logit row {row}");
            }

            var logitRow = 0;
            for (var s = 0; s < rows; s++)
            {
                var count = batch.LogitRows(s);
                logitRow += count;
                next[s] = count > 0 ? LogitMath.ArgMax(expected.AsSpan((logitRow - 1) * vocab, vocab)) : 7;
                pasts[s] += batch.Tokens(s).Length;
            }
        }

        Assert.Equal(0, whole.StepsOverLogitBudget);
        Assert.Equal(2, parts.StepsOverLogitBudget);
    }

    private static int[] Tokens(int count, int seed) => [.. Enumerable.Range(0, count).Select(i => ((i * 41) + (seed * 89)) % 450 + 3)];
}
