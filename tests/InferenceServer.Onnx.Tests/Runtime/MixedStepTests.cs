using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>
/// Steps that mix decodes with prefills (continuous batching's usual step): the dense runner runs them in parts (the
/// decodes together, the prefills together), and every row's logits must equal those of its sequence run alone, before,
/// during and after the mixed steps (the decodes' kept present must stay right across them).
/// </summary>
public sealed class MixedStepTests
{
    private const int BlockSize = 16;

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    public void MixedSteps_GiveEachRowItsAloneLogits(string fixture)
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(FixturePaths.Fixture(fixture)));
        var vocab = model.Spec.VocabularySize;
        int[][] prompts = [Tokens(10, 3), Tokens(7, 5), Tokens(12, 7), Tokens(20, 11), Tokens(5, 13)];
        int[] decoded = [17, 29, 31, 43, 57];

        // Each sequence alone: its prompt, then one decoded token per step; the logits after each step.
        var alone = new List<float[]>[prompts.Length];
        using (var runner = new DenseKvRunner(model, 8, BlockSize))
        {
            var batch = new ForwardBatch();
            for (var s = 0; s < prompts.Length; s++)
            {
                alone[s] = [];
                var past = 0;
                foreach (var tokens in new[] { prompts[s] }.Concat(decoded.Select(t => new[] { t })))
                {
                    batch.Clear();
                    batch.AddRow(tokens, past, [0, 1, 2], wantLogits: true, sequenceId: s);
                    var logits = new float[vocab];
                    runner.Forward(batch, logits);
                    alone[s].Add(logits);
                    past += tokens.Length;
                }
            }
        }

        // Together: sequences join at different steps, so steps 1 and 3 mix decodes with prefills (step 3 with two of
        // them, of different lengths); step 3's decodes reuse step 2's present. Sequence s holds blocks [3s, 3s + 3);
        // joins[s] is the step at which its prompt runs.
        int[] joins = [0, 0, 1, 3, 3];
        using var together = new DenseKvRunner(model, 3 * prompts.Length, BlockSize);
        var step = new ForwardBatch();
        var next = new int[prompts.Length];
        var pasts = new int[prompts.Length];
        var mixedSteps = 0;
        for (var t = 0; t < 6; t++)
        {
            step.Clear();
            var rows = new List<int>();
            for (var s = 0; s < prompts.Length; s++)
            {
                if (joins[s] > t || next[s] > decoded.Length)
                {
                    continue;
                }

                int[] tokens = next[s] == 0 ? prompts[s] : [decoded[next[s] - 1]];
                step.AddRow(tokens, pasts[s], [3 * s, (3 * s) + 1, (3 * s) + 2], wantLogits: true, sequenceId: s);
                rows.Add(s);
                pasts[s] += tokens.Length;
            }

            mixedSteps += step.MaxNewTokens > 1 && step.MinNewTokens == 1 ? 1 : 0;
            var logits = new float[rows.Count * vocab];
            together.Forward(step, logits);
            for (var r = 0; r < rows.Count; r++)
            {
                var s = rows[r];
                LogitAssert.Close(alone[s][next[s]], logits.AsSpan(r * vocab, vocab), $"step {t}, sequence {s}, its step {next[s]}");
                next[s]++;
            }
        }

        Assert.Equal(2, mixedSteps);
        Assert.Equal(2, together.StepsInParts);
    }

    private static int[] Tokens(int count, int seed) => [.. Enumerable.Range(0, count).Select(i => ((i * 37) + (seed * 101)) % 500 + 3)];
}
