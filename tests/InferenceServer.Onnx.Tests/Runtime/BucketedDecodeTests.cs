using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>
/// The dense runner's decode bucket (ADR 0001): rows of different lengths decoding over fixed-shape tensors, through the
/// bucket's growth and a change of composition, give at every step the logits of their whole sequence run as one
/// prefill; steps that continue the bucket without growing it allocate nothing on the managed heap.
/// </summary>
public sealed class BucketedDecodeTests
{
    private const int BlockSize = 16;

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    [InlineData("deepseek-v3-mla")]
    public void DecodeOverTheBucket_MatchesEachSequencePrefilled_AndSteadyStepsAllocateNothing(string fixture)
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(FixturePaths.Fixture(fixture)));
        var vocab = model.Spec.VocabularySize;
        // The bucket starts at 128 slots; the longest row fills it at step 7 (the storage grows into new arrays: the new
        // tokens of that step come from the old present), the middle row crosses the old end at step 28, the short first
        // row leaves at step 60 (the last row moves into its slot, nothing gathered), a fourth sequence joins at the end
        // at step 70 (only it is gathered), the bucket grows in place at step 72, at step 80 the middle row finishes as a
        // fifth sequence joins (gathered into the middle row's slot: the batch's rows are then not in slot order), and the
        // middle row would have crossed the grown end at 92.
        const int Steps = 100;
        const int Dropped = 0;
        const int DropAt = 60;
        const int Joining = 3;
        const int JoinAt = 70;
        const int Finishing = 1;
        const int Replacing = 4;
        const int ReplaceAt = 80;
        int[] promptLengths = [5, 100, 120, 30, 20];
        var blocksPerRow = (promptLengths.Max() + Steps + BlockSize) / BlockSize;
        using var runner = new DenseKvRunner(model, promptLengths.Length * blocksPerRow, BlockSize);
        var tables = promptLengths.Select((_, r) => Enumerable.Range(r * blocksPerRow, blocksPerRow).ToArray()).ToArray();
        var sequences = promptLengths.Select((length, r) => Enumerable.Range(0, length).Select(i => ((i * 31) + (r * 97)) % 400 + 3).ToList()).ToArray();
        var logitsBySequence = sequences.Select(_ => new List<float[]>()).ToArray();

        // Prompts: one prefill step (the joining sequence's at JoinAt), which also gives each row's first decode token.
        var batch = new ForwardBatch();
        var logits = new float[promptLengths.Length * vocab];
        void Prefill(int[] rows)
        {
            batch.Clear();
            foreach (var r in rows)
            {
                batch.AddRow(sequences[r].ToArray(), 0, tables[r], wantLogits: true, sequenceId: r);
            }

            runner.Forward(batch, logits);
            for (var i = 0; i < rows.Length; i++)
            {
                sequences[rows[i]].Add(LogitMath.ArgMax(logits.AsSpan(i * vocab, vocab)));
            }
        }

        Prefill([.. Enumerable.Range(0, sequences.Length).Where(r => r != Joining && r != Replacing)]);

        // Decode: all rows, then (from DropAt) without row 0, then (from JoinAt) with the joining row at the end.
        var allocatingSteps = 0;
        var newBuckets = 0;
        var lastLength = 0;
        for (var step = 0; step < Steps; step++)
        {
            if (step == JoinAt || step == ReplaceAt)
            {
                Prefill([step == JoinAt ? Joining : Replacing]);
            }

            var rows = Enumerable.Range(0, sequences.Length)
                .Where(r => (step < DropAt || r != Dropped) && (step >= JoinAt || r != Joining) && (step < ReplaceAt || r != Finishing) && (step >= ReplaceAt || r != Replacing))
                .ToArray();
            batch.Clear();
            foreach (var r in rows)
            {
                batch.AddRow([sequences[r][^1]], sequences[r].Count - 1, tables[r], wantLogits: true, sequenceId: r);
            }

            var continued = runner.BucketedSteps + runner.ReshapedSteps;
            var before = GC.GetAllocatedBytesForCurrentThread();
            runner.Forward(batch, logits);
            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            var grew = runner.BucketLength != lastLength;
            newBuckets += runner.BucketedSteps + runner.ReshapedSteps == continued ? 1 : 0;
            lastLength = runner.BucketLength;

            // A step that continued the bucket and did not grow it allocates nothing (after the first few, which warm up
            // the runtime's own paths).
            if (step > 3 && step != DropAt && step != JoinAt && step != ReplaceAt && !grew && allocated > 0)
            {
                allocatingSteps++;
            }

            for (var i = 0; i < rows.Length; i++)
            {
                var r = rows[i];
                var row = logits.AsSpan(i * vocab, vocab);
                logitsBySequence[r].Add(row.ToArray());
                sequences[r].Add(LogitMath.ArgMax(row));
            }
        }

        Assert.Equal(1, newBuckets);
        Assert.Equal(3, runner.ReshapedSteps);
        Assert.True(runner.BucketLength > DenseKvRunner.BucketStep * 2, $"the bucket never grew: {runner.BucketLength}");
        Assert.True(allocatingSteps <= 1, $"{allocatingSteps} steady decode steps allocated");

        // The reference: each whole sequence as one prefill in a fresh runner, logits at every position.
        using var reference = new DenseKvRunner(model, blocksPerRow, BlockSize);
        for (var r = 0; r < sequences.Length; r++)
        {
            var tokens = sequences[r].ToArray()[..^1];
            batch.Clear();
            batch.AddRow(tokens, 0, tables[0].Select((_, j) => j).ToArray(), RowLogits.All);
            var all = new float[tokens.Length * vocab];
            reference.Forward(batch, all);
            var decoded = logitsBySequence[r];
            for (var j = 0; j < decoded.Count; j++)
            {
                var position = promptLengths[r] + j;
                LogitAssert.Close(all.AsSpan(position * vocab, vocab), decoded[j], $"row {r}, decode step {j}");
            }
        }
    }
}
